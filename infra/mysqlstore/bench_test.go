package mysqlstore_test

import (
	"fmt"
	"os"
	"testing"

	"seckill/domain/sale"
	"seckill/infra/testenv"
)

// BenchmarkConfirm measures the order worker's hot path: batches of fresh
// orders confirmed one after another on a single hot item, so every batch
// contends for the same items row. It runs on the real MariaDB/MySQL when
// SECKILL_TEST_MYSQL_DSN is set and on SQLite otherwise; the orders/s metric
// is the one to compare across batch sizes.
func BenchmarkConfirm(b *testing.B) {
	be := sqliteBackend
	if os.Getenv(testenv.MySQLDSNVar) != "" {
		be = mysqlBackend
	}
	for _, size := range []int{1, 10, 100, 500} {
		b.Run(fmt.Sprintf("%s/batch=%d", be.name, size), func(b *testing.B) {
			s := be.open(b)
			it := newItem(b, s, sale.MaxStock)
			// Orders are built before the clock starts: the benchmark is
			// about the database, not crypto/rand.
			batches := make([][]sale.Order, b.N)
			for i := range batches {
				batches[i] = ordersFor(it, fmt.Sprintf("b%d-", i), size)
			}
			// Top stock up so the guard never refuses a batch mid-run.
			for need := int64(b.N*size) - sale.MaxStock; need > 0; need -= sale.MaxStock {
				if _, err := s.Restock(b.Context(), it.ID, min(need, sale.MaxStock), fmt.Sprintf("top-up-%d", need)); err != nil {
					b.Fatal(err)
				}
			}
			b.ResetTimer()
			for i := range b.N {
				n, _, err := s.Confirm(b.Context(), batches[i])
				if err != nil || n != size {
					b.Fatalf("Confirm = %d, %v; want %d", n, err, size)
				}
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N*size)/b.Elapsed().Seconds(), "orders/s")
			if st := stats(b, s, it.ID); st.Confirmed != int64(b.N*size) {
				b.Fatalf("confirmed %d, want %d", st.Confirmed, b.N*size)
			}
		})
	}
}
