package agent

import (
	"fmt"
	"net/http"
	"runtime/pprof"
	"strconv"
	"time"
)

// serveProfile answers /debug/pprof/<name> with one of the runtime's profiles (heap,
// goroutine, allocs, block, mutex, threadcreate) or, for "profile", a CPU profile of
// ?seconds= (default 30), in the format `go tool pprof` reads. It is net/http/pprof's
// handler without that package's registration on the process-wide DefaultServeMux.
func serveProfile(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("profile")
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", fmt.Sprintf("attachment; filename=%q", name))
	if name == "profile" {
		serveCPUProfile(w, r)
		return
	}
	p := pprof.Lookup(name)
	if p == nil {
		http.Error(w, fmt.Sprintf("unknown profile %q", name), http.StatusNotFound)
		return
	}
	if err := p.WriteTo(w, 0); err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
	}
}

func serveCPUProfile(w http.ResponseWriter, r *http.Request) {
	seconds, err := strconv.Atoi(r.URL.Query().Get("seconds"))
	if err != nil || seconds <= 0 {
		seconds = 30
	}
	if err := pprof.StartCPUProfile(w); err != nil {
		http.Error(w, fmt.Sprintf("CPU profile: %v", err), http.StatusConflict)
		return
	}
	defer pprof.StopCPUProfile()
	select {
	case <-time.After(time.Duration(seconds) * time.Second):
	case <-r.Context().Done():
	}
}
