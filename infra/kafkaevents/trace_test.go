package kafkaevents_test

import (
	"testing"

	"seckill/infra/kafkaevents"
)

// TestRequestIDTravelsInHeaders: the request id of an order is written as a
// message header (with the order id) and read back onto the delivered
// order; an order without one arrives without one.
func TestRequestIDTravelsInHeaders(t *testing.T) {
	t.Parallel()
	_, brokers := cluster(t, kafkaevents.Topic{Name: "orders", Partitions: 1})
	ctx := testCtx(t)
	sent := makeOrders(2, 1)
	sent[0].RequestID = "req-abc"
	p := newPublisher(t, brokers, "orders", kafkaevents.PublisherOptions{})
	if err := p.Publish(ctx, sent...); err != nil {
		t.Fatal(err)
	}
	c := newConsumer(t, brokers, "workers", "orders", "")
	got := map[string]string{}
	for _, d := range fetchN(ctx, t, c, 2, 2, false) {
		got[string(d.Order.ID)] = d.Order.RequestID
	}
	if got[string(sent[0].ID)] != "req-abc" || got[string(sent[1].ID)] != "" {
		t.Fatalf("request ids delivered %v; want req-abc on the first order and none on the second", got)
	}
}
