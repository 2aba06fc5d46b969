// Package volumes prepares pod volumes on the node (emptyDir, hostPath, configMap, secret,
// downwardAPI, projected) and removes them when the pod goes. The agent asks it for the
// host paths to mount into containers.
//
// The API:
//
//	m, err := volumes.NewManager(volumes.Config{RootDir: "/var/lib/skiff/agent"})
//	paths, err := m.Setup(ctx, pod, sources) // volume name → host path
//	err = m.Teardown(ctx, pod.UID)            // unmount tmpfs, remove everything
//
// PinSubPath turns a volumeMount's subPath into a bind mount of its own under
// <RootDir>/pods/<uid>/volume-subpaths, opened without following symlinks, which is what
// the runtime mounts (kubelet's safe subPath); Teardown unmounts the pins.
//
// MetadataFieldValue resolves the downward API's metadata field paths (name, namespace,
// uid, one label or annotation) for the agent's env vars as for downwardAPI volumes.
//
// Config also takes an optional EventRecorder (a client-go record.EventRecorder fits),
// an Allocatable func (what a downwardAPI resourceFieldRef shows for an unset limit) and
// a Mounter (tests fake the mount table with it).
//
// Sources hands Setup the ConfigMaps and Secrets the pod refers to; the agent serves them
// from client-go watches. Setup is idempotent and meant to be called at every pod sync:
// it rewrites configMap, secret, downwardAPI and projected files when their source changed
// and does nothing otherwise. A failing volume does not stop the others: Setup returns
// the paths it could prepare and an errors.Join of *SetupError values whose messages are
// kubelet's FailedMount event text (`MountVolume.SetUp failed for volume "x" : configmap
// "y" not found`). A failed refresh of a volume published before (also by an earlier
// agent process) keeps its files and its path in the map: only a failed volume missing
// from the map should hold a pod back. A volume type the node cannot prepare (persistentVolumeClaim, csi ...)
// fails with ErrUnsupported inside its SetupError.
//
// On disk, kubelet's layout: <RootDir>/pods/<uid>/volumes/kubernetes.io~<plugin>/<name>.
//   - emptyDir is a directory there; medium Memory makes it a tmpfs, size= from sizeLimit.
//   - secret and projected volumes are tmpfs mounts, so their contents never reach disk.
//   - configMap, secret, downwardAPI and projected files are published by an AtomicWriter
//     (kubelet's scheme: a timestamped generation directory, a "..data" symlink swapped
//     with rename, user-visible names that are symlinks through "..data"), so a container
//     never sees a half-updated or missing file. items (key → path, mode), defaultMode and
//     optional behave as in kubelet.
//   - hostPath returns the host path after the check its type asks for; errors name it.
//   - a pod fsGroup is applied as kubelet does (group ownership, setgid directories).
//   - a projected serviceAccountToken is skipped with a Warning event: there is no token
//     issuer yet.
//
// The Manager keeps no state in memory; the directories and the mount table are the
// state, so Teardown works for pods seen before an agent restart.
package volumes
