// Package web is the sale page, the admin page and the live dashboard,
// embedded in the binary so that no Node build is needed to run them and
// they work offline. The pages are plain HTML, CSS and JavaScript that talk
// to the public JSON API like any other client; the dashboard's one library,
// uPlot, is vendored in static/vendor.
package web

import (
	"embed"
	"io/fs"
	"net/http"
)

//go:embed index.html admin.html dashboard.html static
var files embed.FS

// Handler serves "/" (the sale page), "/admin" (the admin page),
// "/dashboard" (the live dashboard) and "/static/..." (assets, the
// dashboard's chart library among them). Unknown paths are 404.
func Handler() http.Handler {
	static, _ := fs.Sub(files, "static")
	assets := http.StripPrefix("/static/", http.FileServer(http.FS(static)))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/":
			serve(w, "index.html")
		case "/admin":
			serve(w, "admin.html")
		case "/dashboard":
			serve(w, "dashboard.html")
		default:
			w.Header().Set("Cache-Control", "public, max-age=60")
			w.Header().Set("X-Content-Type-Options", "nosniff")
			assets.ServeHTTP(w, r)
		}
	})
}

// pagePolicy lets the pages load only their own scripts, styles and API:
// no inline script, no third-party origin, no framing. The data: image is
// the inline favicon.
const pagePolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'; object-src 'none'"

func serve(w http.ResponseWriter, name string) {
	b, err := files.ReadFile(name)
	if err != nil {
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-cache")
	h.Set("Content-Security-Policy", pagePolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	_, _ = w.Write(b)
}
