package lab

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"seckill/app/config"
)

// get answers the status and body of GET url.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// TestFrontAnswersBeforeAndBetweenRuns: the labs' address answers from the
// moment Addr returns, before any system starts: the dashboard page 200
// and the stream a JSON 503, which the page retries. While a run's system
// is in use its stream comes through as it is written; when the run
// leaves, the address is back to "between runs".
func TestFrontAnswersBeforeAndBetweenRuns(t *testing.T) {
	base := config.Default()
	base.HTTPAddr = "127.0.0.1:0"
	env := &Env{Base: base}
	defer env.Close()
	addr, err := env.Addr()
	if err != nil {
		t.Fatal(err)
	}
	url := "http://" + addr
	if code, body := get(t, url+"/dashboard"); code != http.StatusOK || !strings.Contains(body, "Live dashboard") {
		t.Fatalf("dashboard before the first run: %d %.80q", code, body)
	}
	stream := url + "/api/v1/dashboard/stream"
	if code, body := get(t, stream); code != http.StatusServiceUnavailable || !strings.Contains(body, `"unavailable"`) {
		t.Fatalf("stream before the first run: %d %s, want 503 unavailable", code, body)
	}

	// A stand-in system whose stream writes one event and stays open: the
	// event must reach the client while the response is still open.
	sys := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: {\"t\":1}\n\n")
		w.(http.Flusher).Flush()
		<-r.Context().Done()
	}))
	defer sys.Close()
	env.front.use(sys.URL)
	ctx, cancel := context.WithCancel(context.Background())
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, stream, nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(res.Body).ReadString('\n')
	if res.StatusCode != http.StatusOK || line != "data: {\"t\":1}\n" {
		t.Fatalf("stream during a run: %d %q %v", res.StatusCode, line, err)
	}
	cancel()
	_ = res.Body.Close()

	env.front.leave(sys.URL)
	if code, _ := get(t, stream); code != http.StatusServiceUnavailable {
		t.Errorf("stream after the run left: %d, want 503", code)
	}
	if again, _ := env.Addr(); again != addr {
		t.Errorf("second Addr() = %s, first %s", again, addr)
	}
}
