// Command meshtrace-go-peer is a polyglot interop peer for meshtrace's Rust
// integration tests. It sits in the middle of a Rust -> Go -> Rust chain:
//
//	meshtrace-go-peer -mode grpc|http -listen 127.0.0.1:0 -next HOST:PORT
//
// When it is ready to serve it prints exactly one line to stdout,
//
//	listening on 127.0.0.1:PORT
//
// and then serves until SIGTERM, SIGINT, or EOF on stdin, whichever comes
// first. On the way out it shuts its servers down and (in grpc mode) its
// tracer provider, so every span is exported. Errors go to stderr.
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"os"
	"os/signal"
	"syscall"
	"time"
)

const shutdownTimeout = 5 * time.Second

func main() {
	log.SetOutput(os.Stderr)
	log.SetPrefix("meshtrace-go-peer: ")
	log.SetFlags(log.Lmicroseconds)

	mode := flag.String("mode", "", "peer mode: grpc (otelgrpc-instrumented relay) or http (hand-forwarding, no OpenTelemetry)")
	listen := flag.String("listen", "127.0.0.1:0", "address to listen on")
	next := flag.String("next", "", "host:port of the next hop")
	flag.Parse()

	if *next == "" {
		fmt.Fprintln(os.Stderr, "meshtrace-go-peer: -next is required")
		flag.Usage()
		os.Exit(2)
	}
	if *mode != "grpc" && *mode != "http" {
		fmt.Fprintf(os.Stderr, "meshtrace-go-peer: -mode must be grpc or http, got %q\n", *mode)
		flag.Usage()
		os.Exit(2)
	}

	if err := run(*mode, *listen, *next); err != nil {
		log.Printf("error: %v", err)
		os.Exit(1)
	}
}

// stopContext is cancelled on SIGTERM, SIGINT, or when stdin reaches EOF
// (the Rust test holds our stdin open and closes it to stop us).
func stopContext() (context.Context, context.CancelFunc) {
	ctx, cancel := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	return ctx, cancel
}

func run(mode, listen, next string) error {
	ctx, cancel := stopContext()
	defer cancel()

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", listen, err)
	}
	defer ln.Close()

	switch mode {
	case "grpc":
		return runGRPC(ctx, ln, next)
	default:
		return runHTTP(ctx, ln, next)
	}
}

// announce prints the stdout contract line. os.Stdout is unbuffered in Go, so
// the line is written out immediately; Sync is best-effort (it fails on pipes).
func announce(ln net.Listener) {
	fmt.Fprintf(os.Stdout, "listening on %s\n", ln.Addr().String())
	_ = os.Stdout.Sync()
}
