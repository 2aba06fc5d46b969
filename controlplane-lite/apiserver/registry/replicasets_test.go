package registry

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// seedRequest is the body kubectl POSTs in the seed (kubectl create -f replicaset.yaml).
const seedRequest = `{"apiVersion":"apps/v1","kind":"ReplicaSet","metadata":{"name":"my-replicaset","namespace":"default"},"spec":{"replicas":2,"selector":{"matchLabels":{"app":"my-app"}},"template":{"metadata":{"labels":{"app":"my-app"}},"spec":{"containers":[{"image":"nginx","name":"my-container","ports":[{"containerPort":80}]}]}}}}`

// seedResponseSpecStatus is spec and status of the seed's 201 body from kube-apiserver.
const seedResponseSpecStatus = `"spec":{"replicas":2,"selector":{"matchLabels":{"app":"my-app"}},"template":{"metadata":{"labels":{"app":"my-app"}},"spec":{"containers":[{"name":"my-container","image":"nginx","ports":[{"containerPort":80,"protocol":"TCP"}],"resources":{},"terminationMessagePath":"/dev/termination-log","terminationMessagePolicy":"File","imagePullPolicy":"Always"}],"restartPolicy":"Always","terminationGracePeriodSeconds":30,"dnsPolicy":"ClusterFirst","securityContext":{},"schedulerName":"default-scheduler"}}},"status":{"replicas":0}`

// fixedClock is the "now" of every test strategy.
func fixedClock() time.Time { return time.Date(2026, 11, 28, 19, 0, 0, 0, time.UTC) }

func decodeRS(t *testing.T, body string) *appsv1.ReplicaSet {
	t.Helper()
	rs := &appsv1.ReplicaSet{}
	if err := json.Unmarshal([]byte(body), rs); err != nil {
		t.Fatal(err)
	}
	return rs
}

// createRS runs the create path the REST layer runs.
func createRS(t *testing.T, rs *appsv1.ReplicaSet) field.ErrorList {
	t.Helper()
	s := replicaSetStrategy{now: fixedClock}
	s.Default(rs)
	s.PrepareForCreate(context.Background(), rs)
	return s.Validate(context.Background(), rs)
}

func TestReplicaSetSeedDefaults(t *testing.T) {
	rs := decodeRS(t, seedRequest)
	if errs := createRS(t, rs); len(errs) > 0 {
		t.Fatalf("seed ReplicaSet invalid: %v", errs.ToAggregate())
	}
	out, err := json.Marshal(rs)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), seedResponseSpecStatus+"}") {
		t.Errorf("defaulted ReplicaSet differs from kube-apiserver's\n got: %s\nwant: ...%s}", out, seedResponseSpecStatus)
	}
	if rs.Generation != 1 {
		t.Errorf("generation = %d, want 1", rs.Generation)
	}
}

func TestReplicaSetDefaultReplicas(t *testing.T) {
	rs := decodeRS(t, strings.Replace(seedRequest, `"replicas":2,`, "", 1))
	replicaSetStrategy{}.Default(rs)
	if rs.Spec.Replicas == nil || *rs.Spec.Replicas != 1 {
		t.Fatalf("replicas = %v, want 1", rs.Spec.Replicas)
	}
}

func TestReplicaSetInvalid(t *testing.T) {
	for _, tc := range []struct {
		name, from, to string
		want           string
	}{
		{"negative replicas", `"replicas":2`, `"replicas":-1`,
			"spec.replicas: Invalid value: -1: must be greater than or equal to 0"},
		{"selector mismatch", `"template":{"metadata":{"labels":{"app":"my-app"}}`, `"template":{"metadata":{"labels":{"app":"other"}}`,
			"spec.template.metadata.labels: Invalid value: {\"app\":\"other\"}: `selector` does not match template `labels`"},
		{"empty image", `"image":"nginx"`, `"image":""`,
			"spec.template.spec.containers[0].image: Required value"},
		{"no selector", `"selector":{"matchLabels":{"app":"my-app"}},`, ``,
			"spec.selector: Required value"},
		{"restart policy", `"containers":[`, `"restartPolicy":"Never","containers":[`,
			`spec.template.spec.restartPolicy: Unsupported value: "Never": supported values: "Always"`},
		{"bad container name", `"name":"my-container"`, `"name":"My_Container"`,
			`spec.template.spec.containers[0].name: Invalid value: "My_Container"`},
		{"bad port", `"containerPort":80`, `"containerPort":70000`,
			"spec.template.spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive"},
		{"bad name", `"name":"my-replicaset"`, `"name":"My RS"`,
			`metadata.name: Invalid value: "My RS"`},
		{"empty selector", `"selector":{"matchLabels":{"app":"my-app"}}`, `"selector":{}`,
			"spec.selector: Invalid value: {}: empty selector is invalid for deployment"},
		{"bad template label", `"labels":{"app":"my-app"}}`, `"labels":{"app":"my-app","bad key!":"x"}}`,
			`spec.template.labels: Invalid value: "bad key!"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			body := strings.Replace(seedRequest, tc.from, tc.to, 1)
			if body == seedRequest {
				t.Fatalf("test edit %q not applied", tc.from)
			}
			errs := createRS(t, decodeRS(t, body))
			if !containsError(errs, tc.want) {
				t.Errorf("errors %v\ndo not include %q", errs.ToAggregate(), tc.want)
			}
		})
	}
}

// containsError reports whether one error's text starts with want.
func containsError(errs field.ErrorList, want string) bool {
	for _, e := range errs {
		if strings.HasPrefix(e.Error(), want) {
			return true
		}
	}
	return false
}

func TestReplicaSetUpdate(t *testing.T) {
	s := replicaSetStrategy{now: fixedClock}
	old := decodeRS(t, seedRequest)
	if errs := createRS(t, old); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	old.ResourceVersion = "10"
	old.Status.Replicas = 2

	updated := old.DeepCopy()
	updated.Status.Replicas = 7 // ignored: status is written through /status
	updated.Spec.Replicas = ptrTo[int32](3)
	s.PrepareForUpdate(context.Background(), updated, old)
	if updated.Generation != 2 || updated.Status.Replicas != 2 {
		t.Errorf("generation %d status.replicas %d, want 2 and 2", updated.Generation, updated.Status.Replicas)
	}
	if errs := s.ValidateUpdate(context.Background(), updated, old); len(errs) > 0 {
		t.Errorf("valid update rejected: %v", errs.ToAggregate())
	}

	relabeled := old.DeepCopy()
	relabeled.Spec.Selector.MatchLabels = map[string]string{"app": "x"}
	relabeled.Spec.Template.Labels = map[string]string{"app": "x"}
	if errs := s.ValidateUpdate(context.Background(), relabeled, old); !containsError(errs, "spec.selector: Invalid value") {
		t.Errorf("selector change accepted: %v", errs.ToAggregate())
	}

	// kubectl replace -f sends neither uid nor creationTimestamp nor the defaults.
	replaced := decodeRS(t, seedRequest)
	replaced.ResourceVersion = old.ResourceVersion
	old.UID, old.CreationTimestamp = "uid-1", metav1.NewTime(fixedClock())
	s.PrepareForUpdate(context.Background(), replaced, old)
	if errs := s.ValidateUpdate(context.Background(), replaced, old); len(errs) > 0 || replaced.UID != "uid-1" || replaced.Generation != old.Generation {
		t.Errorf("replace without system metadata: %v %+v", errs.ToAggregate(), replaced.ObjectMeta)
	}

	labelsOnly := old.DeepCopy()
	labelsOnly.Labels = map[string]string{"tier": "web"}
	s.PrepareForUpdate(context.Background(), labelsOnly, old)
	if labelsOnly.Generation != old.Generation {
		t.Errorf("metadata-only update bumped generation to %d", labelsOnly.Generation)
	}
}

func TestReplicaSetStatusUpdate(t *testing.T) {
	old := decodeRS(t, seedRequest)
	if errs := createRS(t, old); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	old.ResourceVersion = "10"
	s := replicaSetStatusStrategy{}
	upd := old.DeepCopy()
	upd.Spec.Replicas = ptrTo[int32](9)
	upd.Status = appsv1.ReplicaSetStatus{Replicas: 2, ReadyReplicas: 3}
	s.PrepareForUpdate(context.Background(), upd, old)
	if *upd.Spec.Replicas != 2 {
		t.Errorf("status update changed spec.replicas to %d", *upd.Spec.Replicas)
	}
	if errs := s.ValidateUpdate(context.Background(), upd, old); !containsError(errs, "status.readyReplicas: Invalid value: 3: cannot be greater than status.replicas") {
		t.Errorf("errors %v", errs.ToAggregate())
	}
}

func TestReplicaSetScale(t *testing.T) {
	rs := decodeRS(t, seedRequest)
	if errs := createRS(t, rs); len(errs) > 0 {
		t.Fatal(errs.ToAggregate())
	}
	rs.UID, rs.ResourceVersion = "uid-1", "42"
	rs.Status.Replicas = 1
	def := replicaSetDefinition(fixedClock)
	sub := def.Subresources["scale"]

	obj, err := sub.Get(rs)
	if err != nil {
		t.Fatal(err)
	}
	scale := obj.(*autoscalingv1.Scale)
	if scale.Spec.Replicas != 2 || scale.Status.Replicas != 1 || scale.Status.Selector != "app=my-app" ||
		scale.Name != "my-replicaset" || scale.ResourceVersion != "42" {
		t.Errorf("scale = %+v", scale)
	}

	scale.Spec.Replicas = 5
	out, err := sub.Apply(context.Background(), rs.DeepCopy(), scale)
	if err != nil {
		t.Fatal(err)
	}
	if got := *out.(*appsv1.ReplicaSet).Spec.Replicas; got != 5 {
		t.Errorf("spec.replicas after scale = %d, want 5", got)
	}

	scale.Spec.Replicas = -1
	_, err = sub.Apply(context.Background(), rs.DeepCopy(), scale)
	if !apierrors.IsInvalid(err) || !strings.Contains(err.Error(), "spec.replicas: Invalid value: -1: must be greater than or equal to 0") {
		t.Errorf("negative scale: err = %v", err)
	}

	stale := &autoscalingv1.Scale{ObjectMeta: metav1.ObjectMeta{Name: "my-replicaset", ResourceVersion: "41"}, Spec: autoscalingv1.ScaleSpec{Replicas: 3}}
	out, err = sub.Apply(context.Background(), rs.DeepCopy(), stale)
	if err != nil || out.(*appsv1.ReplicaSet).ResourceVersion != "41" {
		t.Errorf("stale scale must carry its resourceVersion to the store's conflict check: %v", err)
	}
}

func TestReplicaSetTable(t *testing.T) {
	rs := decodeRS(t, seedRequest)
	createRS(t, rs)
	rs.CreationTimestamp = metav1.NewTime(fixedClock().Add(-90 * time.Second))
	rs.Status.Replicas, rs.Status.ReadyReplicas = 2, 1
	list := &appsv1.ReplicaSetList{ListMeta: metav1.ListMeta{ResourceVersion: "77"}, Items: []appsv1.ReplicaSet{*rs}}
	table, err := replicaSetStrategy{now: fixedClock}.ConvertToTable(context.Background(), list)
	if err != nil {
		t.Fatal(err)
	}
	assertColumns(t, table, "Name", "Desired", "Current", "Ready", "Age", "Containers", "Images", "Selector")
	assertCells(t, table.Rows[0], "my-replicaset", int64(2), int64(2), int64(1), "90s", "my-container", "nginx", "app=my-app")
	if table.ResourceVersion != "77" {
		t.Errorf("table resourceVersion = %q", table.ResourceVersion)
	}
}

func assertColumns(t *testing.T, table *metav1.Table, names ...string) {
	t.Helper()
	if len(table.ColumnDefinitions) != len(names) {
		t.Fatalf("columns = %+v, want %v", table.ColumnDefinitions, names)
	}
	for i, c := range table.ColumnDefinitions {
		if c.Name != names[i] || c.Type == "" || c.Description == "" {
			t.Errorf("column %d = %+v, want name %q with type and description", i, c, names[i])
		}
	}
	for _, row := range table.Rows {
		if len(row.Cells) != len(names) {
			t.Errorf("row has %d cells for %d columns: %v", len(row.Cells), len(names), row.Cells)
		}
		if row.Object.Object == nil {
			t.Errorf("row without object")
		}
	}
}

func assertCells(t *testing.T, row metav1.TableRow, want ...interface{}) {
	t.Helper()
	for i, w := range want {
		if i >= len(row.Cells) || row.Cells[i] != w {
			t.Errorf("cells = %#v\nwant  %#v", row.Cells, want)
			return
		}
	}
}
