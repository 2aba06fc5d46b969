package etcd

import (
	"sort"
	"strings"

	"github.com/go-logr/logr"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
)

// benign reports etcd warnings that describe skiff's deliberate single-node setup (one
// port for gRPC and HTTP, no etcd auth) and would only confuse a skiff user.
func benign(msg string) bool {
	return strings.HasPrefix(msg, "Running http and grpc server on single port") ||
		strings.HasPrefix(msg, "simple token is not cryptographically signed")
}

// klogCore is a zapcore.Core that hands etcd's log entries to skiff's logr logger, so that
// the few lines etcd emits at warn level and above look like the rest of skiff's output.
type klogCore struct {
	logger logr.Logger
	level  zap.AtomicLevel
	fields []zapcore.Field
}

// newZapLogger returns a zap logger named name on top of logger that drops entries below level.
func newZapLogger(logger logr.Logger, name string, level zap.AtomicLevel) *zap.Logger {
	return zap.New(&klogCore{logger: logger.WithName(name), level: level})
}

func (c *klogCore) Enabled(l zapcore.Level) bool { return c.level.Enabled(l) }

func (c *klogCore) With(fields []zapcore.Field) zapcore.Core {
	clone := *c
	clone.fields = append(append([]zapcore.Field(nil), c.fields...), fields...)
	return &clone
}

func (c *klogCore) Check(e zapcore.Entry, ce *zapcore.CheckedEntry) *zapcore.CheckedEntry {
	if !c.Enabled(e.Level) {
		return ce
	}
	if benign(e.Message) {
		return ce
	}
	return ce.AddCore(e, c)
}

func (c *klogCore) Write(e zapcore.Entry, fields []zapcore.Field) error {
	enc := zapcore.NewMapObjectEncoder()
	for _, f := range c.fields {
		f.AddTo(enc)
	}
	for _, f := range fields {
		f.AddTo(enc)
	}
	var errVal error
	keys := make([]string, 0, len(enc.Fields))
	for k, v := range enc.Fields {
		if k == "error" {
			if s, ok := v.(string); ok {
				errVal = stringError(s)
				continue
			}
		}
		keys = append(keys, k)
	}
	sort.Strings(keys)
	kvs := make([]any, 0, 2*len(keys))
	for _, k := range keys {
		kvs = append(kvs, k, enc.Fields[k])
	}
	if e.Level >= zapcore.ErrorLevel {
		c.logger.Error(errVal, e.Message, kvs...)
		return nil
	}
	if errVal != nil {
		kvs = append(kvs, "err", errVal.Error())
	}
	c.logger.Info(e.Message, kvs...)
	return nil
}

func (c *klogCore) Sync() error { return nil }

type stringError string

func (e stringError) Error() string { return string(e) }
