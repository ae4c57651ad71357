package api

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"time"

	"github.com/corpintel/corpintel/api/app"
	"github.com/corpintel/corpintel/internal/version"
	"go.opentelemetry.io/contrib/instrumentation/net/http/otelhttp"
	"go.opentelemetry.io/otel"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	semconv "go.opentelemetry.io/otel/semconv/v1.26.0"
)

// tracing exports OpenTelemetry spans over OTLP/HTTP when OTEL_EXPORTER_OTLP_ENDPOINT is
// set (the seed's Jaeger accepts OTLP); otherwise it costs nothing.
type tracing struct {
	wrap     func(http.Handler) http.Handler
	shutdown func()
}

func setupTracing(ctx context.Context, cfg app.Config, log *slog.Logger) (tracing, error) {
	if cfg.OTLPEndpoint == "" {
		return tracing{wrap: func(h http.Handler) http.Handler { return h }, shutdown: func() {}}, nil
	}
	// The exporter reads OTEL_EXPORTER_OTLP_ENDPOINT (and the other OTEL_* variables) itself.
	exp, err := otlptracehttp.New(ctx)
	if err != nil {
		return tracing{}, fmt.Errorf("tracing: OTLP exporter for %s: %w", cfg.OTLPEndpoint, err)
	}
	res := resource.NewSchemaless(semconv.ServiceName("corpintel-api"), semconv.ServiceVersion(version.Version))
	tp := sdktrace.NewTracerProvider(sdktrace.WithBatcher(exp), sdktrace.WithResource(res))
	otel.SetTracerProvider(tp)
	otel.SetTextMapPropagator(propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}))
	log.Info("exporting traces", "endpoint", cfg.OTLPEndpoint)
	return tracing{
		wrap: func(h http.Handler) http.Handler {
			return otelhttp.NewHandler(h, "corpintel-api", otelhttp.WithTracerProvider(tp))
		},
		shutdown: func() {
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			if err := tp.Shutdown(sctx); err != nil {
				log.Warn("flush traces", "err", err)
			}
		},
	}, nil
}
