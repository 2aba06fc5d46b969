package apiserver

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// kubectlTableAccept is what kubectl get sends.
const kubectlTableAccept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json"

func TestTableNegotiation(t *testing.T) {
	s := newTestServer(t)
	created := createRS(t, s, "web")
	createRS(t, s, "api")

	resp := s.do(t, http.MethodGet, rsPath, "", "Accept", kubectlTableAccept)
	expectCode(t, resp, http.StatusOK)
	if ct := resp.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("Content-Type = %q", ct)
	}
	var table metav1.Table
	resp.into(t, &table)
	if table.Kind != "Table" || table.APIVersion != "meta.k8s.io/v1" || table.ResourceVersion == "" {
		t.Fatalf("table = %s", resp.body)
	}
	if len(table.ColumnDefinitions) != 5 || table.ColumnDefinitions[0].Name != "Name" || len(table.Rows) != 2 {
		t.Fatalf("columns %v, %d rows", table.ColumnDefinitions, len(table.Rows))
	}
	// By default the rows carry PartialObjectMetadata.
	var partial metav1.PartialObjectMetadata
	if err := json.Unmarshal(table.Rows[0].Object.Raw, &partial); err != nil {
		t.Fatal(err)
	}
	if partial.APIVersion != "meta.k8s.io/v1" || partial.Kind != "PartialObjectMetadata" || partial.ResourceVersion == "" {
		t.Errorf("row object = %s", table.Rows[0].Object.Raw)
	}

	resp = s.do(t, http.MethodGet, rsPath+"/web?includeObject=Object", "", "Accept", kubectlTableAccept)
	expectCode(t, resp, http.StatusOK)
	resp.into(t, &table)
	if len(table.Rows) != 1 || table.Rows[0].Cells[0] != "web" {
		t.Fatalf("single-object table = %s", resp.body)
	}
	var full appsv1.ReplicaSet
	if err := json.Unmarshal(table.Rows[0].Object.Raw, &full); err != nil {
		t.Fatal(err)
	}
	if full.Kind != "ReplicaSet" || full.UID != created.UID || full.Spec.Replicas == nil {
		t.Errorf("row object = %s", table.Rows[0].Object.Raw)
	}

	resp = s.do(t, http.MethodGet, rsPath+"?includeObject=None", "", "Accept", kubectlTableAccept)
	var bare metav1.Table
	resp.into(t, &bare)
	if len(bare.Rows) != 2 || bare.Rows[0].Object.Raw != nil {
		t.Errorf("includeObject=None: %s", resp.body)
	}
	expectCode(t, s.do(t, http.MethodGet, rsPath+"?includeObject=All", "", "Accept", kubectlTableAccept), http.StatusBadRequest)

	// Without a table in Accept: the plain list.
	resp = s.do(t, http.MethodGet, rsPath, "", "Accept", "application/json")
	var list appsv1.ReplicaSetList
	resp.into(t, &list)
	if list.Kind != "ReplicaSetList" || list.APIVersion != "apps/v1" || len(list.Items) != 2 {
		t.Errorf("list = %s", resp.body)
	}
	// Tables only: a client that accepts nothing else is refused.
	resp = s.do(t, http.MethodGet, rsPath, "", "Accept", "application/json;as=Table;v=v1beta1;g=meta.k8s.io")
	expectCode(t, resp, http.StatusNotAcceptable)
}

func TestPartialObjectMetadata(t *testing.T) {
	s := newTestServer(t)
	createRS(t, s, "web")
	resp := s.do(t, http.MethodGet, rsPath, "", "Accept", "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1")
	expectCode(t, resp, http.StatusOK)
	var list metav1.PartialObjectMetadataList
	resp.into(t, &list)
	if list.Kind != "PartialObjectMetadataList" || len(list.Items) != 1 || list.Items[0].Name != "web" || list.ResourceVersion == "" {
		t.Errorf("list = %s", resp.body)
	}
	resp = s.do(t, http.MethodGet, rsPath+"/web", "", "Accept", "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1")
	var one metav1.PartialObjectMetadata
	resp.into(t, &one)
	if one.Kind != "PartialObjectMetadata" || one.Name != "web" || strings.Contains(string(resp.body), "spec") {
		t.Errorf("object = %s", resp.body)
	}
}
