// Command nnp prints the effective user ID it runs with: "Effective uid: N".
//
// It is the program of the nonewprivs stand-in image that test/images/build.sh builds for
// critest (registry.k8s.io/e2e-test-images/nonewprivs). The image installs it setuid root
// and runs it as an unprivileged user, so it prints 0 when the container may gain
// privileges and the caller's UID when no_new_privs is set.
package main
