package etcd

import (
	"errors"
	"strings"
	"testing"

	"github.com/go-logr/logr/funcr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

func TestZapBridgeKeepsOnlyUsefulLines(t *testing.T) {
	var lines []string
	logger := funcr.New(func(prefix, args string) { lines = append(lines, prefix+" "+args) }, funcr.Options{})
	level := zap.NewAtomicLevelAt(zapcore.WarnLevel)
	lg := newZapLogger(logger, "etcd", level).With(zap.String("member", "skiff"))

	lg.Info("started serving")                                           // below warn
	lg.Warn("Running http and grpc server on single port. Not for prod") // benign
	lg.Warn("apply request took too long", zap.Duration("took", 2e9), zap.Error(errors.New("slow disk")))
	lg.Error("failed to publish", zap.Error(errors.New("no leader")))
	level.SetLevel(zapcore.FatalLevel) // what Close does
	lg.Error("setting up serving from embedded etcd failed")

	if len(lines) != 2 {
		t.Fatalf("got %d lines, want the warning and the error:\n%s", len(lines), strings.Join(lines, "\n"))
	}
	for _, want := range []string{`"apply request took too long"`, `"took"="2s"`, `"err"="slow disk"`, `"member"="skiff"`, `etcd`} {
		if !strings.Contains(lines[0], want) {
			t.Errorf("warning line %q lacks %s", lines[0], want)
		}
	}
	if !strings.Contains(lines[1], `"failed to publish"`) || !strings.Contains(lines[1], `"error"="no leader"`) {
		t.Errorf("error line %q", lines[1])
	}
}
