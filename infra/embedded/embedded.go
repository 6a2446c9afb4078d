// Package embedded runs in-process stand-ins for Redis (miniredis) and Kafka
// (franz-go's kfake) that speak the real wire protocols on real TCP ports,
// so `make run` and tests work on a machine that has only Go.
//
// They are stand-ins, not replicas: nothing is persisted, a Kafka "cluster"
// is one broker, and miniredis implements most but not all of Redis.
package embedded
