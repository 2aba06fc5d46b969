package network

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"
	"k8s.io/klog/v2"
)

// RouteProtocol marks the routes SyncRoutes installs (`ip route show proto 197`), so that
// it can tell them from everyone else's and remove the stale ones.
const RouteProtocol = 197

// SyncRoutes makes the main routing table of the calling thread's network namespace hold
// exactly routes among the routes marked RouteProtocol: missing ones are added, changed ones
// replaced, others deleted. Call it with every other node's pod CIDR each time nodes change.
// Traffic from this node's pods to those CIDRs is then no longer masqueraded (the
// generated network only), so a pod sees the address of the pod that calls it.
func (m *Manager) SyncRoutes(ctx context.Context, routes []Route) error {
	err := m.syncRouteTable(ctx, routes)
	var podCIDRs []string
	for _, r := range routes {
		if _, dst, perr := net.ParseCIDR(r.Dst); perr == nil {
			podCIDRs = append(podCIDRs, dst.String())
		}
	}
	slices.Sort(podCIDRs)
	return errors.Join(err, m.syncMasquerade(ctx, slices.Compact(podCIDRs)))
}

// syncRouteTable is SyncRoutes for the routing table alone.
func (m *Manager) syncRouteTable(ctx context.Context, routes []Route) error {
	want := make(map[string]net.IP, len(routes))
	for _, r := range routes {
		_, dst, err := net.ParseCIDR(r.Dst)
		if err != nil || dst.IP.To4() == nil {
			return fmt.Errorf("route %q: want an IPv4 CIDR", r.Dst)
		}
		via := r.Via.To4()
		if via == nil {
			return fmt.Errorf("route %s: gateway %v is not an IPv4 address", r.Dst, r.Via)
		}
		want[dst.String()] = via
	}
	have, err := listRoutes()
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	logger := klog.FromContext(ctx)
	var errs []error
	for dst, via := range want {
		if cur, ok := have[dst]; ok && cur.Equal(via) {
			continue
		}
		if err := changeRoute(unix.RTM_NEWROUTE, dst, via); err != nil {
			errs = append(errs, fmt.Errorf("add route %s via %s: %w", dst, via, err))
			continue
		}
		logger.V(2).Info("Added pod CIDR route", "dst", dst, "via", via)
	}
	for dst, via := range have {
		if _, ok := want[dst]; ok {
			continue
		}
		if err := changeRoute(unix.RTM_DELROUTE, dst, via); err != nil && !errors.Is(err, unix.ESRCH) {
			errs = append(errs, fmt.Errorf("delete route %s: %w", dst, err))
			continue
		}
		logger.V(2).Info("Deleted pod CIDR route", "dst", dst, "via", via)
	}
	return errors.Join(errs...)
}

// rtmsg mirrors struct rtmsg of <linux/rtnetlink.h>.
type rtmsg struct {
	Family, DstLen, SrcLen, Tos, Table, Protocol, Scope, Type uint8
	Flags                                                     uint32
}

// changeRoute adds (replacing) or deletes one of our routes in the main table.
func changeRoute(op uint16, dst string, via net.IP) error {
	_, ipnet, err := net.ParseCIDR(dst)
	if err != nil {
		return err
	}
	ones, _ := ipnet.Mask.Size()
	flags := uint16(unix.NLM_F_REQUEST | unix.NLM_F_ACK)
	if op == unix.RTM_NEWROUTE {
		flags |= unix.NLM_F_CREATE | unix.NLM_F_REPLACE
	}
	body := encodeRtmsg(rtmsg{Family: unix.AF_INET, DstLen: uint8(ones), Table: unix.RT_TABLE_MAIN,
		Protocol: RouteProtocol, Scope: unix.RT_SCOPE_UNIVERSE, Type: unix.RTN_UNICAST})
	body = appendAttr(body, unix.RTA_DST, ipnet.IP.To4())
	body = appendAttr(body, unix.RTA_GATEWAY, via.To4())
	_, err = netlinkRequest(op, flags, body)
	return err
}

// listRoutes returns our routes in the main table: destination CIDR -> gateway.
func listRoutes() (map[string]net.IP, error) {
	msgs, err := netlinkRequest(unix.RTM_GETROUTE, unix.NLM_F_REQUEST|unix.NLM_F_DUMP,
		encodeRtmsg(rtmsg{Family: unix.AF_INET}))
	if err != nil {
		return nil, err
	}
	routes := map[string]net.IP{}
	for _, msg := range msgs {
		if msg.Header.Type != unix.RTM_NEWROUTE || len(msg.Data) < unix.SizeofRtMsg {
			continue
		}
		rt := msg.Data
		dstLen, table, proto := rt[1], rt[4], rt[5]
		if table != unix.RT_TABLE_MAIN || proto != RouteProtocol {
			continue
		}
		attrs, err := syscall.ParseNetlinkRouteAttr(&msg)
		if err != nil {
			return nil, err
		}
		var dst, gw net.IP
		for _, a := range attrs {
			switch a.Attr.Type {
			case unix.RTA_DST:
				dst = net.IP(a.Value)
			case unix.RTA_GATEWAY:
				gw = net.IP(a.Value)
			}
		}
		if dst == nil {
			continue
		}
		routes[(&net.IPNet{IP: dst, Mask: net.CIDRMask(int(dstLen), 32)}).String()] = gw
	}
	return routes, nil
}

func encodeRtmsg(r rtmsg) []byte {
	b := []byte{r.Family, r.DstLen, r.SrcLen, r.Tos, r.Table, r.Protocol, r.Scope, r.Type, 0, 0, 0, 0}
	binary.NativeEndian.PutUint32(b[8:], r.Flags)
	return b
}

// appendAttr appends one rtattr, padded to 4 bytes.
func appendAttr(b []byte, typ uint16, value []byte) []byte {
	l := unix.SizeofRtAttr + len(value)
	hdr := make([]byte, unix.SizeofRtAttr)
	binary.NativeEndian.PutUint16(hdr[0:2], uint16(l))
	binary.NativeEndian.PutUint16(hdr[2:4], typ)
	b = append(b, hdr...)
	b = append(b, value...)
	for len(b)%4 != 0 {
		b = append(b, 0)
	}
	return b
}
