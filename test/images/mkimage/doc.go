// Command mkimage packs a root filesystem directory into a single-layer OCI image layout.
//
//	mkimage --rootfs DIR --config config.json --ref nginx:latest --out LAYOUT
//
// config.json holds the image's runtime config (the "config" object of an OCI image
// config: Entrypoint, Cmd, Env, ExposedPorts, User, WorkingDir, StopSignal, Labels).
// The layer keeps owners, modes, symlinks and hard links; every timestamp is --epoch
// (default 0, or SOURCE_DATE_EPOCH), so the same rootfs gives the same digests.
// The layout is written to a temporary directory and renamed into place, so a half-written
// layout never passes for a finished one.
package main
