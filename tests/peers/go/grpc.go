package main

import (
	"context"
	"errors"
	"fmt"
	"log"
	"net"
	"os"
	"time"

	"go.opentelemetry.io/contrib/instrumentation/google.golang.org/grpc/otelgrpc"
	"go.opentelemetry.io/contrib/propagators/autoprop"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// There is no protoc here. The Rust side's messages are
//
//	message ForwardRequest { string path = 1; }
//	message ForwardReply   { string body = 1; }
//
// both wire-identical to google.protobuf.StringValue, so StringValue is used
// for both and the service descriptor is written by hand.
const (
	relayServiceName   = "meshtrace.test.Relay"
	forwardFullMethod  = "/" + relayServiceName + "/Forward"
	defaultServiceName = "go-grpc"
)

// relayServer is the hand-written server interface for meshtrace.test.Relay.
type relayServer interface {
	Forward(context.Context, *wrapperspb.StringValue) (*wrapperspb.StringValue, error)
}

var relayServiceDesc = grpc.ServiceDesc{
	ServiceName: relayServiceName,
	HandlerType: (*relayServer)(nil),
	Methods: []grpc.MethodDesc{{
		MethodName: "Forward",
		Handler:    forwardHandler,
	}},
	Streams:  []grpc.StreamDesc{},
	Metadata: "meshtrace/test/relay.proto",
}

func forwardHandler(srv any, ctx context.Context, dec func(any) error, interceptor grpc.UnaryServerInterceptor) (any, error) {
	in := new(wrapperspb.StringValue)
	if err := dec(in); err != nil {
		return nil, err
	}
	if interceptor == nil {
		return srv.(relayServer).Forward(ctx, in)
	}
	info := &grpc.UnaryServerInfo{Server: srv, FullMethod: forwardFullMethod}
	handler := func(ctx context.Context, req any) (any, error) {
		return srv.(relayServer).Forward(ctx, req.(*wrapperspb.StringValue))
	}
	return interceptor(ctx, in, info, handler)
}

// invokeForward is the hand-written client call for Relay/Forward.
func invokeForward(ctx context.Context, cc grpc.ClientConnInterface, path string) (*wrapperspb.StringValue, error) {
	reply := new(wrapperspb.StringValue)
	if err := cc.Invoke(ctx, forwardFullMethod, wrapperspb.String(path), reply); err != nil {
		return nil, err
	}
	return reply, nil
}

// relay forwards Forward(path) to the next hop and returns its reply body
// unchanged (or its status, code and message unchanged).
type relay struct {
	next *grpc.ClientConn
}

func (r *relay) Forward(ctx context.Context, in *wrapperspb.StringValue) (*wrapperspb.StringValue, error) {
	// x-request-id is not a trace format: forward it by hand, as Istio tells
	// every application to. Trace context and baggage are left to otelgrpc
	// and the global propagator.
	if md, ok := metadata.FromIncomingContext(ctx); ok {
		for _, v := range md.Get("x-request-id") {
			ctx = metadata.AppendToOutgoingContext(ctx, "x-request-id", v)
		}
	}
	reply, err := invokeForward(ctx, r.next, in.GetValue())
	if err != nil {
		st := status.Convert(err)
		log.Printf("grpc: next hop Forward(%q): %v: %s", in.GetValue(), st.Code(), st.Message())
		return nil, st.Err()
	}
	return wrapperspb.String(reply.GetValue()), nil
}

// newRelay builds the otelgrpc-instrumented server and its client conn to
// next. tp is the tracer provider for both stats handlers; the propagator is
// always otel's global one.
func newRelay(next string, tp trace.TracerProvider) (*grpc.Server, *grpc.ClientConn, error) {
	cc, err := grpc.NewClient(next,
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithStatsHandler(otelgrpc.NewClientHandler(otelgrpc.WithTracerProvider(tp))),
	)
	if err != nil {
		return nil, nil, fmt.Errorf("grpc client for %s: %w", next, err)
	}
	srv := grpc.NewServer(grpc.StatsHandler(otelgrpc.NewServerHandler(otelgrpc.WithTracerProvider(tp))))
	srv.RegisterService(&relayServiceDesc, &relay{next: cc})
	return srv, cc, nil
}

// newTracerProvider builds the SDK tracer provider: OTLP/gRPC exporter, batch
// span processor, sampler and batch settings all configured by the SDK from
// the standard OTEL_* environment variables.
func newTracerProvider(ctx context.Context) (*sdktrace.TracerProvider, error) {
	exporter, err := otlptracegrpc.New(ctx)
	if err != nil {
		return nil, fmt.Errorf("otlp exporter: %w", err)
	}
	name := os.Getenv("OTEL_SERVICE_NAME")
	if name == "" {
		name = defaultServiceName
	}
	res, err := resource.New(ctx,
		resource.WithAttributes(attribute.String("service.name", name)),
		resource.WithFromEnv(),
		resource.WithTelemetrySDK(),
	)
	if err != nil && res == nil {
		return nil, fmt.Errorf("resource: %w", err)
	}
	if err != nil {
		log.Printf("resource: %v", err)
	}
	return sdktrace.NewTracerProvider(
		sdktrace.WithBatcher(exporter),
		sdktrace.WithResource(res),
	), nil
}

func runGRPC(ctx context.Context, ln net.Listener, next string) error {
	otel.SetErrorHandler(otel.ErrorHandlerFunc(func(err error) {
		log.Printf("otel: %v", err)
	}))
	// Reads OTEL_PROPAGATORS (e.g. tracecontext,baggage,b3multi); defaults
	// to tracecontext,baggage.
	otel.SetTextMapPropagator(autoprop.NewTextMapPropagator())

	tp, err := newTracerProvider(context.Background())
	if err != nil {
		return err
	}
	otel.SetTracerProvider(tp)
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		if err := tp.Shutdown(sctx); err != nil {
			log.Printf("tracer provider shutdown: %v", err)
		}
	}()

	srv, cc, err := newRelay(next, tp)
	if err != nil {
		return err
	}
	defer cc.Close()

	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	announce(ln)

	select {
	case err := <-errc:
		return fmt.Errorf("grpc serve: %w", err)
	case <-ctx.Done():
	}

	stopped := make(chan struct{})
	go func() { srv.GracefulStop(); close(stopped) }()
	select {
	case <-stopped:
	case <-time.After(shutdownTimeout):
		srv.Stop()
		<-stopped
	}
	if err := <-errc; err != nil && !errors.Is(err, grpc.ErrServerStopped) {
		return fmt.Errorf("grpc serve: %w", err)
	}
	return nil
}
