package main

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// machine describes where the numbers were taken.
type machine struct {
	CPUs      int
	CPUModel  string
	Go        string
	Kernel    string
	Redis     string
	Database  string
	Wrk       string
	LoadStart string
}

func describeMachine() machine {
	m := machine{CPUs: runtime.NumCPU(), Go: runtime.Version() + " " + runtime.GOOS + "/" + runtime.GOARCH, CPUModel: "unknown"}
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				m.CPUModel = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	if b, err := os.ReadFile("/proc/sys/kernel/osrelease"); err == nil {
		m.Kernel = strings.TrimSpace(string(b))
	}
	if out, err := exec.Command("wrk", "-v").CombinedOutput(); len(out) > 0 {
		_ = err // wrk -v exits non-zero after printing its version
		m.Wrk, _, _ = strings.Cut(string(out), "\n")
		m.Wrk, _, _ = strings.Cut(m.Wrk, " Copyright")
		m.Wrk = strings.TrimSpace(m.Wrk)
	}
	m.LoadStart = loadAvg()
	return m
}

func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(b))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ")
}

// backendPIDs are the local Redis and MariaDB processes, if found, so their
// CPU can be told apart from other load on the machine, and the broker
// child's.
type backendPIDs struct{ Redis, DB, Kafka int }

// findBackendPIDs finds the redis-server listening on redisPort and the
// mariadbd/mysqld on dbPort. Other redis-server or mariadbd processes on
// the machine (a test's private servers) are told apart by the port in
// their command line: Redis names its address there, and a mariadbd
// without --port listens on 3306.
func findBackendPIDs(redisPort, dbPort string) backendPIDs {
	var p backendPIDs
	entries, err := os.ReadDir("/proc")
	if err != nil {
		return p
	}
	redisScore, dbScore := -1, -1
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err != nil {
			continue
		}
		raw, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
		args := strings.Split(strings.TrimRight(string(raw), "\x00"), "\x00")
		switch strings.TrimSpace(string(b)) {
		case "redis-server":
			score := 0
			if slices.ContainsFunc(args, func(a string) bool { return strings.HasSuffix(a, ":"+redisPort) }) {
				score = 2
			} else if redisPort == "6379" && !slices.ContainsFunc(args, func(a string) bool { return strings.Contains(a, "--port") }) {
				score = 1
			}
			if score > redisScore {
				p.Redis, redisScore = pid, score
			}
		case "mariadbd", "mysqld":
			port := "3306"
			for i, a := range args {
				if v, ok := strings.CutPrefix(a, "--port="); ok {
					port = v
				} else if a == "--port" && i+1 < len(args) {
					port = args[i+1]
				}
			}
			score := 0
			if port == dbPort {
				score = 1
			}
			if score > dbScore {
				p.DB, dbScore = pid, score
			}
		}
	}
	return p
}

// clkTck is USER_HZ, the unit of /proc/stat and /proc/<pid>/stat; 100 on
// every Linux this runs on.
const clkTck = 100

type cpuSnap struct {
	at            time.Time
	busy, all     int64 // machine-wide ticks
	self          time.Duration
	redisT, dbT   int64 // ticks
	redisOK, dbOK bool
	kafkaT        int64 // ticks of the broker child process
	kafkaOK       bool
	heap          uint64 // seckill's heap, bytes
	gcs           uint32
	peakRSS       int64 // this process's peak resident set (VmHWM) since the last resetPeakRSS, bytes; 0 unknown
}

// resetPeakRSS makes the kernel's peak-RSS mark (VmHWM) start again from the
// current RSS ("5" in /proc/self/clear_refs, Linux 4.0+), so the peak read
// at the end of a run is that run's. It reports whether the reset worked.
func resetPeakRSS() bool {
	return os.WriteFile("/proc/self/clear_refs", []byte("5"), 0) == nil
}

// peakRSS is VmHWM of this process in bytes, or 0 if unknown.
func peakRSS() int64 {
	b, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmHWM:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10
		}
	}
	return 0
}

func takeCPU(p backendPIDs) cpuSnap {
	s := cpuSnap{at: time.Now()}
	if busy, all, err := cpuTimes(); err == nil {
		s.busy, s.all = busy, all
	}
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) == nil {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s.heap, s.gcs = ms.HeapAlloc, ms.NumGC
	s.peakRSS = peakRSS()
	s.redisT, s.redisOK = procTicks(p.Redis)
	s.kafkaT, s.kafkaOK = procTicks(p.Kafka)
	s.dbT, s.dbOK = procTicks(p.DB)
	return s
}

func procTicks(pid int) (int64, bool) {
	if pid == 0 {
		return 0, false
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, false
	}
	// Fields after the ")" that closes the command name; utime and stime
	// are fields 14 and 15 of the whole line.
	_, rest, ok := strings.Cut(string(b), ") ")
	if !ok {
		return 0, false
	}
	f := strings.Fields(rest)
	if len(f) < 13 {
		return 0, false
	}
	u, _ := strconv.ParseInt(f[11], 10, 64)
	st, _ := strconv.ParseInt(f[12], 10, 64)
	return u + st, true
}

// cpuUse is the average number of cores each party used during a run.
type cpuUse struct {
	Server, Wrk, Redis, DB, Kafka, Other, Idle float64
	Known                                      bool
	// HeapMB is seckill's heap at the end of the run (live objects and
	// garbage not yet collected); GCs how many collections ran during it.
	HeapMB float64
	GCs    uint32
	// PeakRSSMB is the process's peak resident set during the run (the
	// whole process: API, worker, the in-process Kafka broker and
	// benchsale itself), or 0 if the kernel would not tell.
	PeakRSSMB float64
}

func cpuBetween(a, b cpuSnap, wrk time.Duration) cpuUse {
	secs := b.at.Sub(a.at).Seconds()
	if secs <= 0 || b.all == a.all {
		return cpuUse{}
	}
	cores := float64(runtime.NumCPU())
	u := cpuUse{Known: true, HeapMB: float64(b.heap) / (1 << 20), GCs: b.gcs - a.gcs, PeakRSSMB: float64(b.peakRSS) / (1 << 20)}
	u.Server = (b.self - a.self).Seconds() / secs
	u.Wrk = wrk.Seconds() / secs
	if a.redisOK && b.redisOK {
		u.Redis = float64(b.redisT-a.redisT) / clkTck / secs
	}
	if a.dbOK && b.dbOK {
		u.DB = float64(b.dbT-a.dbT) / clkTck / secs
	}
	if a.kafkaOK && b.kafkaOK {
		u.Kafka = float64(b.kafkaT-a.kafkaT) / clkTck / secs
	}
	busy := float64(b.busy-a.busy) / float64(b.all-a.all) * cores
	u.Idle = cores - busy
	u.Other = max(0, busy-u.Server-u.Wrk-u.Redis-u.DB-u.Kafka)
	return u
}

func (u cpuUse) String() string {
	if !u.Known {
		return "cpu: unknown"
	}
	return fmt.Sprintf("cores used: seckill %.2f, wrk %.2f, redis %.2f, mariadb %.2f, kafka %.2f, other processes %.2f, idle %.2f",
		u.Server, u.Wrk, u.Redis, u.DB, u.Kafka, u.Other, u.Idle)
}
