package cri

import (
	"testing"

	"github.com/containerd/errdefs"
)

func TestSysctlNamespace(t *testing.T) {
	for name, want := range map[string]string{
		"net.ipv4.ip_forward":        "net",
		"net/ipv4/conf/eth0.100/rp":  "net",
		"kernel.shm_rmid_forced":     "ipc",
		"kernel/shmmax":              "ipc",
		"fs.mqueue.msg_max":          "ipc",
		"kernel.domainname":          "uts",
		"vm.overcommit_memory":       "",
		"kernel.pid_max":             "",
		"kernel.shm_rmid_forced_not": "",
	} {
		if got := sysctlNamespace(name); got != want {
			t.Errorf("sysctlNamespace(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestCheckPodSysctls(t *testing.T) {
	for _, tc := range []struct {
		sysctls          map[string]string
		hostNet, hostIPC bool
		ok               bool
	}{
		{sysctls: map[string]string{"net.ipv4.ip_forward": "1", "kernel.sem": "1 2 3 4"}, ok: true},
		{sysctls: map[string]string{"net.ipv4.ip_forward": "1"}, hostNet: true},
		{sysctls: map[string]string{"kernel.domainname": "x"}, hostNet: true},
		{sysctls: map[string]string{"kernel.msgmax": "1"}, hostIPC: true},
		{sysctls: map[string]string{"kernel.msgmax": "1"}, hostNet: true, ok: true},
		{sysctls: map[string]string{"vm.swappiness": "1"}},
	} {
		err := checkPodSysctls(tc.sysctls, tc.hostNet, tc.hostIPC)
		if (err == nil) != tc.ok || (err != nil && !errdefs.IsInvalidArgument(err)) {
			t.Errorf("checkPodSysctls(%v, hostNet=%v, hostIPC=%v) = %v", tc.sysctls, tc.hostNet, tc.hostIPC, err)
		}
	}
}
