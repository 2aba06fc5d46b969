// Package volumes prepares pod volumes on the node (emptyDir, hostPath, configMap, secret,
// downwardAPI, projected) and removes them when the pod goes. The agent asks it for the
// host paths to mount into containers.
package volumes
