//go:build e2e

package e2e

import (
	"context"
	"os"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"
)

// BenchmarkSeed times the seed flow: `kubectl create -f replicaset.yaml` until both pods are
// Running and Ready. The first round runs on a fresh containerd (image pulled from the local
// mirror: "cold"); the later rounds find the image present ("warm"). It also reports the
// size of the skiff binary.
func BenchmarkSeed(b *testing.B) {
	registryConfig := startMirror(b, requireEnv(b, "SKIFF_IMAGES"))
	n := newNode(b, registryConfig)
	n.start()
	cfg, err := clientcmd.BuildConfigFromFlags("", n.kubecfg)
	if err != nil {
		b.Fatal(err)
	}
	client := kubernetes.NewForConfigOrDie(cfg)

	var cold time.Duration
	var warm []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N+1; i++ {
		elapsed := seedRound(b, n, client)
		if i == 0 {
			cold = elapsed
		} else {
			warm = append(warm, elapsed)
		}
	}
	b.StopTimer()
	b.ReportMetric(cold.Seconds(), "s-cold")
	if len(warm) > 0 {
		b.ReportMetric(median(warm).Seconds(), "s-warm-median")
	}
	if info, err := os.Stat(n.bin); err == nil {
		b.ReportMetric(float64(info.Size())/(1<<20), "MiB-binary")
	}
}

// seedRound creates the seed's ReplicaSet, waits for both pods Ready, then deletes it and
// waits for the pods to go; it returns the create → both Ready time.
func seedRound(b *testing.B, n *node, client kubernetes.Interface) time.Duration {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	start := time.Now()
	n.kubectl("create", "-f", "testdata/replicaset.yaml")
	for {
		pods, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: seedSelector})
		if err != nil {
			b.Fatal(err)
		}
		if readyCount(pods.Items) == 2 {
			break
		}
		if ctx.Err() != nil {
			b.Fatal("pods did not become Ready")
		}
		time.Sleep(20 * time.Millisecond)
	}
	elapsed := time.Since(start)
	n.kubectl("delete", "rs", "my-replicaset")
	for {
		pods, err := client.CoreV1().Pods("default").List(ctx, metav1.ListOptions{LabelSelector: seedSelector})
		if err == nil && len(pods.Items) == 0 {
			return elapsed
		}
		if ctx.Err() != nil {
			b.Fatal("pods were not deleted")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func readyCount(pods []corev1.Pod) int {
	ready := 0
	for _, pod := range pods {
		for _, c := range pod.Status.Conditions {
			if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
				ready++
			}
		}
	}
	return ready
}

func median(ds []time.Duration) time.Duration {
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	return sorted[len(sorted)/2]
}
