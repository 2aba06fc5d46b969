package agent

import (
	"net"
	"net/url"
	"strconv"
	"strings"

	v1 "k8s.io/api/core/v1"
)

// httpActionURL is the URL an httpGet probe or hook requests: the action's host or else
// defaultHost (the pod IP), its port by number or container port name, its path with any
// query kept as a query.
func httpActionURL(g *v1.HTTPGetAction, c *v1.Container, defaultHost string) (*url.URL, error) {
	port, err := resolvePort(g.Port, c)
	if err != nil {
		return nil, err
	}
	host := g.Host
	if host == "" {
		host = defaultHost
	}
	scheme := strings.ToLower(string(g.Scheme))
	if scheme == "" {
		scheme = "http"
	}
	u := &url.URL{Scheme: scheme, Host: net.JoinHostPort(host, strconv.Itoa(port))}
	if path, query, ok := strings.Cut(g.Path, "?"); ok {
		u.Path, u.RawQuery = path, query
	} else {
		u.Path = g.Path
	}
	return u, nil
}
