package registry

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func decodePod(t *testing.T, body string) *corev1.Pod {
	t.Helper()
	pod := &corev1.Pod{}
	if err := json.Unmarshal([]byte(body), pod); err != nil {
		t.Fatal(err)
	}
	return pod
}

// createPod runs the REST layer's create path and fails the test on validation errors.
func createPod(t *testing.T, pod *corev1.Pod) *corev1.Pod {
	t.Helper()
	s := podStrategy{now: fixedClock}
	if pod.Name == "" {
		pod.Name = pod.GenerateName + "abcde"
	}
	s.Default(pod)
	s.PrepareForCreate(context.Background(), pod)
	if errs := s.Validate(context.Background(), pod); len(errs) > 0 {
		t.Fatalf("pod invalid: %v", errs.ToAggregate())
	}
	return pod
}

const seedPod = `{"apiVersion":"v1","kind":"Pod","metadata":{"generateName":"my-replicaset-","namespace":"default","labels":{"app":"my-app"}},
"spec":{"containers":[{"name":"my-container","image":"nginx","ports":[{"containerPort":80}]}]}}`

func TestPodDefaults(t *testing.T) {
	pod := createPod(t, decodePod(t, seedPod))
	out, err := json.Marshal(pod.Spec)
	if err != nil {
		t.Fatal(err)
	}
	// kube-apiserver v1.37's spec for a pod created from the seed's template.
	want := `{"containers":[{"name":"my-container","image":"nginx","ports":[{"containerPort":80,"protocol":"TCP"}],"resources":{},` +
		`"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"Always"}],` +
		`"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","securityContext":{},` +
		`"schedulerName":"default-scheduler","tolerations":[{"key":"node.kubernetes.io/not-ready","operator":"Exists","effect":"NoExecute","tolerationSeconds":300},` +
		`{"key":"node.kubernetes.io/unreachable","operator":"Exists","effect":"NoExecute","tolerationSeconds":300}],` +
		`"priority":0,"enableServiceLinks":true,"preemptionPolicy":"PreemptLowerPriority"}`
	if string(out) != want {
		t.Errorf("pod spec\n got: %s\nwant: %s", out, want)
	}
	status, _ := json.Marshal(pod.Status)
	if string(status) != `{"phase":"Pending","qosClass":"BestEffort"}` || pod.Generation != 1 {
		t.Errorf("status %s generation %d", status, pod.Generation)
	}
}

func TestPodContainerDefaults(t *testing.T) {
	pod := decodePod(t, `{"metadata":{"name":"p","namespace":"default"},"spec":{
	"volumes":[{"name":"cm","configMap":{"name":"c"}},{"name":"s","secret":{"secretName":"s"}},{"name":"scratch"}],
	"containers":[{"name":"a","image":"registry:5000/nginx:1.27",
	  "livenessProbe":{"httpGet":{"port":80}},"readinessProbe":{"tcpSocket":{"port":80},"periodSeconds":5},
	  "env":[{"name":"NODE","valueFrom":{"fieldRef":{"fieldPath":"spec.nodeName"}}}],
	  "resources":{"limits":{"cpu":"500m","memory":"64Mi"}}},
	 {"name":"b","image":"busybox@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"},
	 {"name":"c","image":"localhost:5000/pause"}]}}`)
	createPod(t, pod)
	c := pod.Spec.Containers
	for i, want := range []corev1.PullPolicy{corev1.PullIfNotPresent, corev1.PullIfNotPresent, corev1.PullAlways} {
		if c[i].ImagePullPolicy != want {
			t.Errorf("container %s imagePullPolicy %s, want %s", c[i].Name, c[i].ImagePullPolicy, want)
		}
	}
	lp, rp := c[0].LivenessProbe, c[0].ReadinessProbe
	if lp.TimeoutSeconds != 1 || lp.PeriodSeconds != 10 || lp.SuccessThreshold != 1 || lp.FailureThreshold != 3 ||
		lp.HTTPGet.Scheme != corev1.URISchemeHTTP || lp.HTTPGet.Path != "/" || rp.PeriodSeconds != 5 {
		t.Errorf("probe defaults: liveness %+v readiness %+v", lp, rp)
	}
	if c[0].Env[0].ValueFrom.FieldRef.APIVersion != "v1" {
		t.Errorf("fieldRef apiVersion not defaulted")
	}
	if got := c[0].Resources.Requests[corev1.ResourceMemory]; got.String() != "64Mi" {
		t.Errorf("requests not defaulted from limits: %v", c[0].Resources.Requests)
	}
	v := pod.Spec.Volumes
	if *v[0].ConfigMap.DefaultMode != 420 || *v[1].Secret.DefaultMode != 420 || v[2].EmptyDir == nil {
		t.Errorf("volume defaults: %+v", v)
	}
	// Limits on the first container only: requests exist, limits are incomplete.
	if pod.Status.QOSClass != corev1.PodQOSBurstable {
		t.Errorf("qosClass %s, want Burstable", pod.Status.QOSClass)
	}
}

func TestPodQOSClass(t *testing.T) {
	res := func(req, lim string) corev1.ResourceRequirements {
		r := corev1.ResourceRequirements{}
		if req != "" {
			r.Requests = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(req), corev1.ResourceMemory: resource.MustParse(req + "Mi")}
		}
		if lim != "" {
			r.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(lim), corev1.ResourceMemory: resource.MustParse(lim + "Mi")}
		}
		return r
	}
	for _, tc := range []struct {
		name string
		r    []corev1.ResourceRequirements
		want corev1.PodQOSClass
	}{
		{"none", []corev1.ResourceRequirements{{}}, corev1.PodQOSBestEffort},
		{"equal", []corev1.ResourceRequirements{res("1", "1"), res("2", "2")}, corev1.PodQOSGuaranteed},
		{"requests below limits", []corev1.ResourceRequirements{res("1", "2")}, corev1.PodQOSBurstable},
		{"one container without limits", []corev1.ResourceRequirements{res("1", "1"), {}}, corev1.PodQOSBurstable},
		{"requests only", []corev1.ResourceRequirements{res("1", "")}, corev1.PodQOSBurstable},
	} {
		pod := &corev1.Pod{}
		for _, r := range tc.r {
			pod.Spec.Containers = append(pod.Spec.Containers, corev1.Container{Resources: r})
		}
		if got := podQOSClass(pod); got != tc.want {
			t.Errorf("%s: %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestPodValidate(t *testing.T) {
	for _, tc := range []struct {
		name, from, to, want string
	}{
		{"empty image", `"image":"nginx"`, `"image":""`, "spec.containers[0].image: Required value"},
		{"no containers", `"containers":[{"name":"my-container","image":"nginx","ports":[{"containerPort":80}]}]`, `"containers":[]`, "spec.containers: Required value"},
		{"duplicate container", `"containers":[{`, `"containers":[{"name":"my-container","image":"x"},{`, `spec.containers[1].name: Duplicate value: "my-container"`},
		{"protocol", `"containerPort":80`, `"containerPort":80,"protocol":"HTTP"`, `spec.containers[0].ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP"`},
		{"restart policy", `"containers"`, `"restartPolicy":"Sometimes","containers"`, `spec.restartPolicy: Unsupported value: "Sometimes": supported values: "Always", "OnFailure", "Never"`},
		{"dns policy", `"containers"`, `"dnsPolicy":"Google","containers"`, `spec.dnsPolicy: Unsupported value: "Google"`},
		{"pull policy", `"image":"nginx"`, `"image":"nginx","imagePullPolicy":"Sometimes"`, `spec.containers[0].imagePullPolicy: Unsupported value: "Sometimes"`},
		{"requests over limits", `"image":"nginx"`, `"image":"nginx","resources":{"requests":{"cpu":"2"},"limits":{"cpu":"1"}}`, `spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1`},
		{"duplicate volume", `"containers"`, `"volumes":[{"name":"v","emptyDir":{}},{"name":"v","emptyDir":{}}],"containers"`, `spec.volumes[1].name: Duplicate value: "v"`},
		{"gpu overcommit", `"image":"nginx"`, `"image":"nginx","resources":{"requests":{"example.com/gpu":"1"}}`, `spec.containers[0].resources.limits: Required value: Limit must be set for non overcommitable resources`},
		{"two probe handlers", `"image":"nginx"`, `"image":"nginx","livenessProbe":{"exec":{"command":["true"]},"tcpSocket":{"port":80}}`, `spec.containers[0].livenessProbe.tcpSocket: Forbidden: may not specify more than 1 handler type`},
		{"host port conflict", `"containers":[{`, `"containers":[{"name":"other","image":"x","ports":[{"containerPort":80,"hostPort":8080}]},{"name":"c2","image":"y","ports":[{"containerPort":81,"hostPort":8080}]},{`, `spec.containers[1].ports[0].hostPort: Duplicate value: "TCP//8080"`},
		{"unknown mount", `"image":"nginx"`, `"image":"nginx","volumeMounts":[{"name":"nope","mountPath":"/x"}]`, `spec.containers[0].volumeMounts[0].name: Not found: "nope"`},
		{"bad label", `"labels":{"app":"my-app"}`, `"labels":{"app":"my app"}`, `metadata.labels: Invalid value: "my app"`},
		{"bad generateName", `"generateName":"my-replicaset-"`, `"name":"Pod_1"`, `metadata.name: Invalid value: "Pod_1"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := strings.Replace(seedPod, tc.from, tc.to, 1)
			if body == seedPod {
				t.Fatalf("edit %q not applied", tc.from)
			}
			pod := decodePod(t, body)
			if pod.Name == "" {
				pod.Name = pod.GenerateName + "abcde"
			}
			s := podStrategy{now: fixedClock}
			s.Default(pod)
			s.PrepareForCreate(context.Background(), pod)
			if errs := s.Validate(context.Background(), pod); !containsError(errs, tc.want) {
				t.Errorf("errors %v\ndo not include %q", errs.ToAggregate(), tc.want)
			}
		})
	}
}

func storedPod(t *testing.T) *corev1.Pod {
	t.Helper()
	pod := decodePod(t, seedPod)
	pod.Name, pod.UID, pod.ResourceVersion = "my-replicaset-abcde", "uid-1", "5"
	return createPod(t, pod)
}

func TestPodUpdate(t *testing.T) {
	s := podStrategy{now: fixedClock}
	old := storedPod(t)

	image := old.DeepCopy()
	image.Spec.Containers[0].Image = "nginx:1.27"
	image.Spec.Tolerations = append(image.Spec.Tolerations, corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists})
	s.PrepareForUpdate(context.Background(), image, old)
	if errs := s.ValidateUpdate(context.Background(), image, old); len(errs) > 0 {
		t.Errorf("image change rejected: %v", errs.ToAggregate())
	}
	if image.Generation != 2 {
		t.Errorf("generation %d after spec change, want 2", image.Generation)
	}

	// A user's toleration; the default ones come back through Default, as in kube.
	old = image.DeepCopy()
	for name, edit := range map[string]func(*corev1.Pod){
		"ports":             func(p *corev1.Pod) { p.Spec.Containers[0].Ports[0].ContainerPort = 8080 },
		"nodeName":          func(p *corev1.Pod) { p.Spec.NodeName = "node-1" },
		"remove toleration": func(p *corev1.Pod) { p.Spec.Tolerations = p.Spec.Tolerations[:2] },
		"resources": func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1")}
		},
		"probe": func(p *corev1.Pod) {
			p.Spec.Containers[0].LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(80)}}}
		},
	} {
		upd := old.DeepCopy()
		edit(upd)
		s.Default(upd)
		s.PrepareForUpdate(context.Background(), upd, old)
		errs := s.ValidateUpdate(context.Background(), upd, old)
		if !containsError(errs, "spec: Forbidden: pod updates may not change fields other than `spec.containers[*].image`") &&
			!containsError(errs, "spec.tolerations: Forbidden") {
			t.Errorf("%s: update accepted or wrong error: %v", name, errs.ToAggregate())
		}
	}
}

func TestPodStatusUpdate(t *testing.T) {
	old := storedPod(t)
	upd := old.DeepCopy()
	upd.Spec.NodeName = "sneaky"
	upd.Status = corev1.PodStatus{Phase: corev1.PodRunning, PodIP: "10.88.0.5", PodIPs: []corev1.PodIP{{IP: "10.88.0.5"}}}
	s := podStatusStrategy{}
	s.PrepareForUpdate(context.Background(), upd, old)
	if upd.Spec.NodeName != "" || upd.Status.QOSClass != corev1.PodQOSBestEffort {
		t.Errorf("status update: nodeName %q qosClass %q", upd.Spec.NodeName, upd.Status.QOSClass)
	}
	if errs := s.ValidateUpdate(context.Background(), upd, old); len(errs) > 0 {
		t.Errorf("valid status rejected: %v", errs.ToAggregate())
	}
	upd.Status.PodIPs = []corev1.PodIP{{IP: "10.88.0.300"}}
	upd.Status.PodIP = "10.88.0.300"
	if errs := s.ValidateUpdate(context.Background(), upd, old); !containsError(errs, "status.podIPs[0]: Invalid value") {
		t.Errorf("bad pod IP accepted: %v", errs.ToAggregate())
	}
}

func TestPodBinding(t *testing.T) {
	bind := podDefinition(fixedClock).Subresources["binding"].Apply
	pod := storedPod(t)
	binding := &corev1.Binding{ObjectMeta: metav1.ObjectMeta{Name: pod.Name}, Target: corev1.ObjectReference{Kind: "Node", Name: "node-1"}}

	out, err := bind(context.Background(), pod.DeepCopy(), binding)
	if err != nil {
		t.Fatal(err)
	}
	bound := out.(*corev1.Pod)
	if bound.Spec.NodeName != "node-1" {
		t.Errorf("nodeName = %q", bound.Spec.NodeName)
	}
	if c := bound.Status.Conditions; len(c) != 1 || c[0].Type != corev1.PodScheduled || c[0].Status != corev1.ConditionTrue || !c[0].LastTransitionTime.Time.Equal(fixedClock()) {
		t.Errorf("conditions = %+v", c)
	}

	other := binding.DeepCopy()
	other.Target.Name = "node-2"
	_, err = bind(context.Background(), bound.DeepCopy(), other)
	if !apierrors.IsConflict(err) || !strings.Contains(err.Error(), `pod my-replicaset-abcde is already assigned to node "node-1"`) {
		t.Errorf("second binding: err = %v, want Conflict", err)
	}

	wrongKind := binding.DeepCopy()
	wrongKind.Target.Kind = "Pod"
	_, err = bind(context.Background(), pod.DeepCopy(), wrongKind)
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), `target.kind: Unsupported value: "Pod": supported values: "Node", "<empty>"`) {
		t.Errorf("binding to a Pod: err = %v", err)
	}
}

func TestPodGracefulDelete(t *testing.T) {
	s := podStrategy{now: fixedClock}
	pod := storedPod(t)
	opts := &metav1.DeleteOptions{}
	if s.GracefulDelete(context.Background(), pod, opts) || *opts.GracePeriodSeconds != 0 {
		t.Errorf("unbound pod deleted gracefully")
	}
	pod.Spec.NodeName = "node-1"
	opts = &metav1.DeleteOptions{}
	if !s.GracefulDelete(context.Background(), pod, opts) || *opts.GracePeriodSeconds != 30 {
		t.Errorf("bound pod: graceful period %v, want 30", opts.GracePeriodSeconds)
	}
	opts = &metav1.DeleteOptions{GracePeriodSeconds: ptrTo[int64](0)}
	if s.GracefulDelete(context.Background(), pod, opts) {
		t.Errorf("--grace-period=0 must delete at once")
	}
	opts = &metav1.DeleteOptions{GracePeriodSeconds: ptrTo[int64](5)}
	if !s.GracefulDelete(context.Background(), pod, opts) || *opts.GracePeriodSeconds != 5 {
		t.Errorf("grace 5: %v", *opts.GracePeriodSeconds)
	}
	pod.Status.Phase = corev1.PodSucceeded
	if s.GracefulDelete(context.Background(), pod, &metav1.DeleteOptions{}) {
		t.Errorf("finished pod deleted gracefully")
	}
}

func TestPodAttrs(t *testing.T) {
	pod := storedPod(t)
	pod.Spec.NodeName = "node-1"
	pod.Status.PodIPs = []corev1.PodIP{{IP: "10.0.0.9"}}
	_, f, err := podAttrs(pod)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"metadata.name": pod.Name, "metadata.namespace": "default", "spec.nodeName": "node-1", "spec.restartPolicy": "Always",
		"spec.schedulerName": "default-scheduler", "spec.serviceAccountName": "", "spec.hostNetwork": "false",
		"status.phase": "Pending", "status.podIP": "10.0.0.9", "status.nominatedNodeName": "",
	} {
		if got, ok := f[k]; !ok || got != v {
			t.Errorf("field %s = %q (present %v), want %q", k, got, ok, v)
		}
	}
	if len(f) != 10 {
		t.Errorf("fields %v: want exactly kube's 10", f)
	}
}

func runningPod(t *testing.T) *corev1.Pod {
	pod := storedPod(t)
	pod.CreationTimestamp = metav1.NewTime(fixedClock().Add(-10 * time.Minute))
	pod.Spec.NodeName = "node-1"
	pod.Status.Phase = corev1.PodRunning
	pod.Status.PodIPs = []corev1.PodIP{{IP: "10.88.0.5"}}
	pod.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	pod.Status.ContainerStatuses = []corev1.ContainerStatus{{
		Name: "my-container", Ready: true,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{StartedAt: metav1.NewTime(fixedClock().Add(-9 * time.Minute))}},
	}}
	return pod
}

func podTableRow(t *testing.T, pod *corev1.Pod) metav1.TableRow {
	t.Helper()
	table, err := podStrategy{now: fixedClock}.ConvertToTable(context.Background(), &corev1.PodList{Items: []corev1.Pod{*pod}})
	if err != nil {
		t.Fatal(err)
	}
	assertColumns(t, table, "Name", "Ready", "Status", "Restarts", "Age", "IP", "Node", "Nominated Node", "Readiness Gates")
	return table.Rows[0]
}

func TestPodTableRunning(t *testing.T) {
	row := podTableRow(t, runningPod(t))
	assertCells(t, row, "my-replicaset-abcde", "1/1", "Running", "0", "10m", "10.88.0.5", "node-1", "<none>", "<none>")
}

func TestPodTableCrashLoop(t *testing.T) {
	pod := runningPod(t)
	cs := &pod.Status.ContainerStatuses[0]
	cs.Ready, cs.RestartCount = false, 2
	cs.State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
	cs.LastTerminationState = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{
		ExitCode: 1, Reason: "Error", FinishedAt: metav1.NewTime(fixedClock().Add(-5 * time.Minute)),
	}}
	assertCells(t, podTableRow(t, pod), "my-replicaset-abcde", "0/1", "CrashLoopBackOff", "2 (5m ago)")
}

func TestPodTableTerminating(t *testing.T) {
	pod := runningPod(t)
	pod.DeletionTimestamp = ptrTo(metav1.NewTime(fixedClock().Add(30 * time.Second)))
	assertCells(t, podTableRow(t, pod), "my-replicaset-abcde", "1/1", "Terminating", "0")
}

func TestPodTableOtherStates(t *testing.T) {
	pending := storedPod(t)
	assertCells(t, podTableRow(t, pending), "my-replicaset-abcde", "0/1", "Pending", "0", "<unknown>", "<none>", "<none>")

	creating := runningPod(t)
	creating.Status.ContainerStatuses[0].Ready = false
	creating.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}
	assertCells(t, podTableRow(t, creating), "my-replicaset-abcde", "0/1", "ContainerCreating")

	completed := runningPod(t)
	completed.Status.Phase = corev1.PodSucceeded
	completed.Status.ContainerStatuses[0].Ready = false
	completed.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{Reason: "Completed"}}
	row := podTableRow(t, completed)
	assertCells(t, row, "my-replicaset-abcde", "0/1", "Completed")
	if len(row.Conditions) != 1 || row.Conditions[0].Type != metav1.RowCompleted {
		t.Errorf("completed pod row conditions = %+v", row.Conditions)
	}

	initWaiting := runningPod(t)
	initWaiting.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox"}}
	initWaiting.Status.Phase = corev1.PodPending
	initWaiting.Status.InitContainerStatuses = []corev1.ContainerStatus{{Name: "init", State: corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ImagePullBackOff"}}}}
	initWaiting.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "PodInitializing"}}
	initWaiting.Status.ContainerStatuses[0].Ready = false
	assertCells(t, podTableRow(t, initWaiting), "my-replicaset-abcde", "0/1", "Init:ImagePullBackOff")

	exited := runningPod(t)
	exited.Status.ContainerStatuses[0].Ready = false
	exited.Status.ContainerStatuses[0].State = corev1.ContainerState{Terminated: &corev1.ContainerStateTerminated{ExitCode: 137}}
	assertCells(t, podTableRow(t, exited), "my-replicaset-abcde", "0/1", "ExitCode:137")
}

func TestHostNetworkPortsDefaultedForPodsOnly(t *testing.T) {
	pod := createPod(t, decodePod(t, strings.Replace(seedPod, `"containers"`, `"hostNetwork":true,"containers"`, 1)))
	if got := pod.Spec.Containers[0].Ports[0].HostPort; got != 80 {
		t.Errorf("pod hostPort = %d, want 80", got)
	}
	rs := decodeRS(t, strings.Replace(seedRequest, `"containers"`, `"hostNetwork":true,"containers"`, 1))
	replicaSetStrategy{}.Default(rs)
	if got := rs.Spec.Template.Spec.Containers[0].Ports[0].HostPort; got != 0 {
		t.Errorf("template hostPort = %d, want 0 (kube defaults it on pods only)", got)
	}
}

// PrepareForCreate defaults by itself, so the QoS class sees requests defaulted from
// limits whatever order the REST layer calls Default in.
func TestPodPrepareForCreateDefaultsFirst(t *testing.T) {
	pod := decodePod(t, `{"metadata":{"name":"p","namespace":"default"},"spec":{"containers":[{"name":"a","image":"nginx",
	"resources":{"limits":{"cpu":"1","memory":"64Mi"}}}]}}`)
	podStrategy{now: fixedClock}.PrepareForCreate(context.Background(), pod)
	if pod.Status.QOSClass != corev1.PodQOSGuaranteed || pod.Spec.Containers[0].ImagePullPolicy != corev1.PullAlways {
		t.Errorf("qosClass %s imagePullPolicy %s, want Guaranteed and Always", pod.Status.QOSClass, pod.Spec.Containers[0].ImagePullPolicy)
	}
}
