package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"
)

// istioTracingHeaders is the write-up's istioTracingHeaders: the headers
// Istio tells every application to copy from its inbound request to its
// outbound requests. http mode forwards exactly these, by hand, taking the
// first value of each (r.Header.Get), the way the Go team's middleware does.
var istioTracingHeaders = []string{
	"x-request-id",
	"x-b3-traceid",
	"x-b3-spanid",
	"x-b3-parentspanid",
	"x-b3-sampled",
	"x-b3-flags",
	"x-ot-span-context",
	"traceparent",
	"tracestate",
	"baggage",
}

// newHTTPForwarder returns the http mode handler: for any path it issues a
// GET to http://next + the same path and query, carrying the non-empty
// istioTracingHeaders, and replies with the next hop's status code,
// content-type and body. No OpenTelemetry is involved.
func newHTTPForwarder(next string) http.Handler {
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.Proxy = nil // loopback only: never route through an env proxy
	client := &http.Client{Timeout: 10 * time.Second, Transport: transport}

	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		url := "http://" + next + r.URL.RequestURI()
		out, err := http.NewRequestWithContext(r.Context(), http.MethodGet, url, nil)
		if err != nil {
			log.Printf("http: building request to %s: %v", url, err)
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		for _, h := range istioTracingHeaders {
			if v := r.Header.Get(h); v != "" {
				out.Header.Set(h, v)
			}
		}

		resp, err := client.Do(out)
		if err != nil {
			log.Printf("http: next hop %s: %v", url, err)
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()

		if ct := resp.Header.Get("Content-Type"); ct != "" {
			w.Header().Set("Content-Type", ct)
		}
		w.WriteHeader(resp.StatusCode)
		if _, err := io.Copy(w, resp.Body); err != nil {
			log.Printf("http: copying body from %s: %v", url, err)
		}
	})
}

func runHTTP(ctx context.Context, ln net.Listener, next string) error {
	srv := &http.Server{
		Handler:           newHTTPForwarder(next),
		ReadHeaderTimeout: 10 * time.Second,
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	announce(ln)

	select {
	case err := <-errc:
		return fmt.Errorf("http serve: %w", err)
	case <-ctx.Done():
	}

	sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("http shutdown: %w", err)
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("http serve: %w", err)
	}
	return nil
}
