package agent

import (
	"bytes"
	"os"
	"strings"
)

// Kubelet's limits for a termination message taken from the logs.
const (
	maxFallbackLogLines = 80
	maxFallbackLogBytes = 2048
)

// tailCRILog returns the last lines of a container log in the CRI format
// ("<RFC3339Nano> <stream> <P|F> <content>"), joined back into the container's output
// (full lines end in a newline, as kubelet reads them).
// Only the file's tail is read: logs can be large.
func tailCRILog(path string, maxLines, maxBytes int) string {
	f, err := os.Open(path)
	if err != nil {
		return ""
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return ""
	}
	// CRI framing roughly doubles short lines; read enough raw bytes for maxBytes of text.
	window := max(int64(maxBytes)*4, 64<<10)
	off := max(st.Size()-window, 0)
	buf := make([]byte, st.Size()-off)
	if _, err := f.ReadAt(buf, off); err != nil {
		return ""
	}
	lines := bytes.Split(buf, []byte("\n"))
	if off > 0 && len(lines) > 0 {
		lines = lines[1:] // the first line was cut
	}
	var out strings.Builder
	var parts []string
	for _, l := range lines {
		fields := strings.SplitN(string(l), " ", 4)
		if len(fields) < 4 {
			continue
		}
		out.WriteString(fields[3])
		if fields[2] == "F" { // a full line ends here; P marks a partial one
			out.WriteByte('\n') // kubelet's log reader gives full lines with their newline
			parts = append(parts, out.String())
			out.Reset()
		}
	}
	if out.Len() > 0 {
		parts = append(parts, out.String())
	}
	if len(parts) > maxLines {
		parts = parts[len(parts)-maxLines:]
	}
	msg := strings.Join(parts, "")
	if len(msg) > maxBytes {
		msg = msg[len(msg)-maxBytes:]
	}
	return msg
}
