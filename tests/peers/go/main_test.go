package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/propagators/autoprop"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/baggage"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// ---- http mode ----------------------------------------------------------

func TestHTTPForwardsIstioHeadersFirstValueOnly(t *testing.T) {
	type seen struct {
		uri    string
		method string
		header http.Header
	}
	got := make(chan seen, 1)
	next := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got <- seen{r.URL.RequestURI(), r.Method, r.Header.Clone()}
		w.Header().Set("Content-Type", "application/x-next")
		w.Header().Set("X-Not-Copied", "1")
		w.WriteHeader(http.StatusTeapot)
		_, _ = io.WriteString(w, "from next")
	}))
	defer next.Close()

	peer := httptest.NewServer(newHTTPForwarder(strings.TrimPrefix(next.URL, "http://")))
	defer peer.Close()

	req, _ := http.NewRequest(http.MethodGet, peer.URL+"/a/b?x=1&y=two", nil)
	want := map[string]string{}
	for i, h := range istioTracingHeaders {
		v := fmt.Sprintf("value-%d-%s", i, h)
		req.Header.Add(h, v)
		req.Header.Add(h, "second-"+v) // only the first value may travel
		want[h] = v
	}
	req.Header.Set("X-B3-Flags", "") // empty: must not be set downstream
	delete(want, "x-b3-flags")
	req.Header.Set("X-Custom", "not forwarded")

	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()

	if resp.StatusCode != http.StatusTeapot {
		t.Errorf("status = %d, want %d", resp.StatusCode, http.StatusTeapot)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-next" {
		t.Errorf("content-type = %q", ct)
	}
	if resp.Header.Get("X-Not-Copied") != "" {
		t.Errorf("unexpected header copied back")
	}
	if string(body) != "from next" {
		t.Errorf("body = %q", body)
	}

	s := <-got
	if s.uri != "/a/b?x=1&y=two" || s.method != http.MethodGet {
		t.Errorf("next hop saw %s %s", s.method, s.uri)
	}
	for _, h := range istioTracingHeaders {
		vals := s.header.Values(h)
		w, ok := want[h]
		if !ok {
			if len(vals) != 0 {
				t.Errorf("%s: forwarded %q, want nothing", h, vals)
			}
			continue
		}
		if len(vals) != 1 || vals[0] != w {
			t.Errorf("%s: next hop got %q, want [%q]", h, vals, w)
		}
	}
	if v := s.header.Get("X-Custom"); v != "" {
		t.Errorf("X-Custom forwarded: %q", v)
	}
	for k, vs := range s.header {
		for _, v := range vs {
			if strings.ContainsAny(v, "\r\n") {
				t.Errorf("%s carries CR/LF: %q", k, v)
			}
		}
	}

	// net/http refuses CR/LF in header values outright, so they can never
	// reach the peer (and hence never be forwarded) through it.
	bad, _ := http.NewRequest(http.MethodGet, peer.URL+"/", nil)
	bad.Header.Set("traceparent", "00-x\r\nx-injected: 1")
	if resp, err := http.DefaultClient.Do(bad); err == nil {
		resp.Body.Close()
		t.Errorf("net/http sent a CR/LF header value")
	}
}

func TestHTTPUnreachableNextIs502(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there any more

	peer := httptest.NewServer(newHTTPForwarder(addr))
	defer peer.Close()
	resp, err := http.Get(peer.URL + "/x")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadGateway {
		t.Errorf("status = %d, want 502", resp.StatusCode)
	}
	if !strings.Contains(string(body), addr) {
		t.Errorf("body %q does not carry the error text", body)
	}
}

// ---- grpc mode ----------------------------------------------------------

// echoServer is the fake last hop: it replies with the incoming metadata it
// cares about, one "key=value" line each, sorted; path "/missing" fails.
type echoServer struct{}

var echoKeys = []string{"x-request-id", "baggage", "traceparent", "tracestate", "x-b3-traceid", "x-b3-spanid", "x-b3-sampled"}

func (echoServer) Forward(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	if in.GetValue() == "/missing" {
		return nil, status.Error(codes.NotFound, "no route for /missing")
	}
	md, _ := metadata.FromIncomingContext(ctx)
	lines := []string{"path=" + in.GetValue()}
	for _, k := range echoKeys {
		for _, v := range md.Get(k) {
			lines = append(lines, k+"="+v)
		}
	}
	sort.Strings(lines)
	return wrapperspb.String(strings.Join(lines, "\n")), nil
}

func serve(t *testing.T, srv *grpc.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return ln.Addr().String()
}

func TestGRPCChainPropagates(t *testing.T) {
	t.Setenv("OTEL_PROPAGATORS", "tracecontext,baggage,b3multi")
	otel.SetTextMapPropagator(autoprop.NewTextMapPropagator())

	exp := tracetest.NewInMemoryExporter()
	tp := sdktrace.NewTracerProvider(sdktrace.WithSyncer(exp))
	defer func() { _ = tp.Shutdown(context.Background()) }()

	// client -> relay1 -> relay2 -> echo
	echo := grpc.NewServer()
	echo.RegisterService(&relayServiceDesc, echoServer{})
	echoAddr := serve(t, echo)

	srv2, cc2, err := newRelay(echoAddr, tp)
	if err != nil {
		t.Fatal(err)
	}
	defer cc2.Close()
	relay2Addr := serve(t, srv2)

	srv1, cc1, err := newRelay(relay2Addr, tp)
	if err != nil {
		t.Fatal(err)
	}
	defer cc1.Close()
	relay1Addr := serve(t, srv1)

	client, err := grpc.NewClient(relay1Addr,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(tp))),
	)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	member, _ := baggage.NewMember("tenant", "acme")
	bag, _ := baggage.New(member)
	ctx = baggage.ContextWithBaggage(ctx, bag)
	ctx = metadata.AppendToOutgoingContext(ctx, "x-request-id", "req-42")
	ctx, root := tp.Tracer("test").Start(ctx, "root")
	traceID := root.SpanContext().TraceID()

	reply, err := invokeForward(ctx, client, "/hello")
	root.End()
	if err != nil {
		t.Fatal(err)
	}
	fields := map[string]string{}
	for _, line := range strings.Split(reply.GetValue(), "\n") {
		k, v, _ := strings.Cut(line, "=")
		fields[k] = v
	}
	if fields["path"] != "/hello" {
		t.Errorf("path = %q", fields["path"])
	}
	if fields["x-request-id"] != "req-42" {
		t.Errorf("x-request-id = %q, want req-42", fields["x-request-id"])
	}
	if fields["baggage"] != "tenant=acme" {
		t.Errorf("baggage = %q, want tenant=acme", fields["baggage"])
	}
	tpParts := strings.Split(fields["traceparent"], "-")
	if len(tpParts) != 4 || tpParts[1] != traceID.String() || tpParts[3] != "01" {
		t.Errorf("traceparent = %q, want trace id %s sampled", fields["traceparent"], traceID)
	}
	if fields["x-b3-traceid"] != traceID.String() || fields["x-b3-sampled"] != "1" {
		t.Errorf("b3multi: traceid=%q sampled=%q", fields["x-b3-traceid"], fields["x-b3-sampled"])
	}
	if len(tpParts) == 4 && fields["x-b3-spanid"] != tpParts[2] {
		t.Errorf("b3 span id %q != traceparent span id %q", fields["x-b3-spanid"], tpParts[2])
	}

	// Spans: root, client->relay1, relay1 server, relay1 client, relay2
	// server, relay2 client. Server spans end after the reply is sent, so
	// wait for them.
	var spans tracetest.SpanStubs
	deadline := time.Now().Add(5 * time.Second)
	for {
		spans = exp.GetSpans()
		if len(spans) >= 6 || time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(spans) != 6 {
		t.Fatalf("got %d spans, want 6: %v", len(spans), spans)
	}
	byID := map[trace.SpanID]tracetest.SpanStub{}
	var servers []tracetest.SpanStub
	for _, s := range spans {
		if s.SpanContext.TraceID() != traceID {
			t.Errorf("span %q in trace %s, want %s", s.Name, s.SpanContext.TraceID(), traceID)
		}
		byID[s.SpanContext.SpanID()] = s
		if s.SpanKind == trace.SpanKindServer {
			servers = append(servers, s)
		}
	}
	if len(servers) != 2 {
		t.Fatalf("got %d server spans, want 2", len(servers))
	}
	for _, srv := range servers {
		if srv.Name != "meshtrace.test.Relay/Forward" {
			t.Errorf("server span name %q", srv.Name)
		}
		parent, ok := byID[srv.Parent.SpanID()]
		if !ok || parent.SpanKind != trace.SpanKindClient || !srv.Parent.IsRemote() {
			t.Errorf("server span %s: parent %s is not a remote client span", srv.SpanContext.SpanID(), srv.Parent.SpanID())
		}
		// The relay's own outgoing client span is a child of its server span.
		var child *tracetest.SpanStub
		for i := range spans {
			if spans[i].SpanKind == trace.SpanKindClient && spans[i].Parent.SpanID() == srv.SpanContext.SpanID() {
				child = &spans[i]
			}
		}
		if child == nil {
			t.Errorf("server span %s has no client child span", srv.SpanContext.SpanID())
		} else if child.Parent.IsRemote() {
			t.Errorf("client child of %s has a remote parent", srv.SpanContext.SpanID())
		}
	}
	// The echo server's traceparent names relay2's client span.
	if len(tpParts) == 4 {
		last, ok := byID[spanIDFromHex(t, tpParts[2])]
		if !ok || last.SpanKind != trace.SpanKindClient {
			t.Errorf("traceparent span id %s is not a recorded client span", tpParts[2])
		}
	}
}

func spanIDFromHex(t *testing.T, s string) trace.SpanID {
	t.Helper()
	id, err := trace.SpanIDFromHex(s)
	if err != nil {
		t.Fatal(err)
	}
	return id
}

func TestGRPCNextHopStatusPassesThroughUnchanged(t *testing.T) {
	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()

	echo := grpc.NewServer()
	echo.RegisterService(&relayServiceDesc, echoServer{})
	srv2, cc2, err := newRelay(serve(t, echo), tp)
	if err != nil {
		t.Fatal(err)
	}
	defer cc2.Close()
	srv1, cc1, err := newRelay(serve(t, srv2), tp)
	if err != nil {
		t.Fatal(err)
	}
	defer cc1.Close()

	client, err := grpc.NewClient(serve(t, srv1), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	_, err = invokeForward(ctx, client, "/missing")
	st := status.Convert(err)
	if st.Code() != codes.NotFound || st.Message() != "no route for /missing" {
		t.Errorf("got %v %q, want NotFound %q", st.Code(), st.Message(), "no route for /missing")
	}
}

func TestGRPCUnreachableNextIsUnavailable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := ln.Addr().String()
	ln.Close()

	tp := sdktrace.NewTracerProvider()
	defer func() { _ = tp.Shutdown(context.Background()) }()
	srv, cc, err := newRelay(dead, tp)
	if err != nil {
		t.Fatal(err)
	}
	defer cc.Close()
	client, err := grpc.NewClient(serve(t, srv), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err = invokeForward(ctx, client, "/x")
	if code := status.Code(err); code != codes.Unavailable {
		t.Errorf("code = %v (%v), want Unavailable", code, err)
	}
}
