package dashboard

import (
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// TestQueueFrame: the waiting rooms' gauges are read and summed over
// items, and admissions become a rate between two samples.
func TestQueueFrame(t *testing.T) {
	t.Parallel()
	r := prometheus.NewRegistry()
	waiting := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "seckill_queue_waiting"}, []string{"item"})
	admitted := prometheus.NewGauge(prometheus.GaugeOpts{Name: "seckill_queue_admissions"})
	used := prometheus.NewGauge(prometheus.GaugeOpts{Name: "seckill_queue_admissions_used"})
	r.MustRegister(waiting, admitted, used)
	waiting.WithLabelValues("1").Set(300)
	waiting.WithLabelValues("2").Set(20)
	admitted.Set(100)
	fams, _ := r.Gather()
	prev := Read(fams, time.Unix(100, 0))
	admitted.Set(300)
	used.Set(150)
	fams, _ = r.Gather()
	cur := Read(fams, time.Unix(102, 0))
	if prev.Queue.Waiting != 320 {
		t.Fatalf("waiting = %v, want 320 (summed over items)", prev.Queue.Waiting)
	}
	q := QueueBetween(prev, cur)
	if q.AdmittedPer != 100 || q.Used != 150 || q.Waiting != 320 {
		t.Fatalf("QueueBetween = %+v, want 100/s admitted, 150 used, 320 waiting", q)
	}
}
