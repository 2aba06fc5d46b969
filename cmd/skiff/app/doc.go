// Package app builds the skiff command line: flags, their defaults, and the wiring of the
// rooms (controlplane-lite, agent, cri, network) into the up/server/agent/cri subcommands.
package app
