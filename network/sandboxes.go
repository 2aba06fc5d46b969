package network

import (
	"bufio"
	"errors"
	"os"
	"path/filepath"
	"strings"
)

// Sandboxes returns the sandboxes this manager holds network state for, whichever step
// it is at: a netns in NetnsDir, a CNI result cached by an ADD, or an IP reserved in the
// generated network's host-local store (an ADD cut short before its result was cached).
// The value is the sandbox's netns path, "" when it has none. A runtime restarted after a
// crash compares this with the sandboxes it knows and detaches the rest.
func (m *Manager) Sandboxes() (map[string]string, error) {
	found := map[string]string{}
	var errs []error
	if entries, err := os.ReadDir(m.cfg.NetnsDir); err == nil {
		for _, e := range entries {
			found[e.Name()] = filepath.Join(m.cfg.NetnsDir, e.Name())
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	network, _ := m.currentNames()
	attachments, err := m.cni.GetCachedAttachments("")
	errs = append(errs, err)
	for _, a := range attachments {
		if a.Network == network {
			addSandbox(found, a.ContainerID)
		}
	}
	ids, err := hostLocalReservations(filepath.Join(m.cfg.ipamDataDir(), network))
	errs = append(errs, err)
	for _, id := range ids {
		addSandbox(found, id)
	}
	return found, errors.Join(errs...)
}

func addSandbox(found map[string]string, id string) {
	if _, ok := found[id]; !ok && id != "" {
		found[id] = ""
	}
}

// hostLocalReservations reads the container IDs of host-local's reservations: one file per
// IP, holding "<container ID>\n<interface>".
func hostLocalReservations(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, e := range entries {
		// Besides the reservations: last_reserved_ip.<range> and the lock file.
		if e.IsDir() || strings.HasPrefix(e.Name(), "last_reserved_ip") || e.Name() == "lock" {
			continue
		}
		f, err := os.Open(filepath.Join(dir, e.Name()))
		if err != nil {
			continue // released meanwhile
		}
		sc := bufio.NewScanner(f)
		if sc.Scan() {
			ids = append(ids, strings.TrimSpace(sc.Text()))
		}
		f.Close()
	}
	return ids, nil
}
