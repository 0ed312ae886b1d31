package main

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"gopkg.in/yaml.v3"
)

// The example configurations in deploy/ hold only keys the program knows.
func TestDeployConfigExamples(t *testing.T) {
	check := func(name, path string) {
		t.Helper()
		for _, cmd := range []string{"run", "status"} {
			code, _, errOut := runCLI(t, cmd, "--config", path)
			// It gets past the file and stops at the secret the file leaves out.
			if want := "cdcrelay: --database-url is not set (or CDCRELAY_DATABASE_URL, or database-url in --config)\n"; code != 1 || errOut != want {
				t.Errorf("%s %s: status %d, stderr %q", cmd, name, code, errOut)
			}
		}
	}
	check("deploy/cdcrelay.yaml.example", copyAs(t, "../../deploy/cdcrelay.yaml.example", "cdcrelay.yaml"))

	docs := kubernetesDocs(t)
	cm := docs["ConfigMap"]
	var data struct {
		Data map[string]string `yaml:"data"`
	}
	if err := cm.Decode(&data); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "cdcrelay.yaml")
	if err := os.WriteFile(p, []byte(data.Data["cdcrelay.yaml"]), 0o600); err != nil {
		t.Fatal(err)
	}
	check("the ConfigMap", p)

	var dep struct {
		Spec struct {
			Replicas int `yaml:"replicas"`
			Template struct {
				Spec struct {
					Containers []struct {
						Args           []string `yaml:"args"`
						LivenessProbe  probe    `yaml:"livenessProbe"`
						ReadinessProbe probe    `yaml:"readinessProbe"`
						Ports          []struct {
							ContainerPort int `yaml:"containerPort"`
						} `yaml:"ports"`
					} `yaml:"containers"`
				} `yaml:"spec"`
			} `yaml:"template"`
		} `yaml:"spec"`
	}
	if err := docs["Deployment"].Decode(&dep); err != nil {
		t.Fatal(err)
	}
	c := dep.Spec.Template.Spec.Containers
	if dep.Spec.Replicas < 2 || len(c) != 1 || c[0].LivenessProbe.HTTPGet.Path != "/healthz" ||
		c[0].ReadinessProbe.HTTPGet.Path != "/readyz" || len(c[0].Ports) != 1 || c[0].Ports[0].ContainerPort != 9187 {
		t.Errorf("deployment = %+v", dep.Spec)
	}
	if _, ok := docs["PodDisruptionBudget"]; !ok {
		t.Error("no PodDisruptionBudget")
	}
}

type probe struct {
	HTTPGet struct {
		Path string `yaml:"path"`
	} `yaml:"httpGet"`
}

func kubernetesDocs(t *testing.T) map[string]*yaml.Node {
	t.Helper()
	b, err := os.ReadFile("../../deploy/kubernetes/cdcrelay.yaml")
	if err != nil {
		t.Fatal(err)
	}
	docs := map[string]*yaml.Node{}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	for {
		var n yaml.Node
		if err := dec.Decode(&n); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("deploy/kubernetes/cdcrelay.yaml: %v", err)
		}
		var head struct {
			Kind string `yaml:"kind"`
		}
		if err := n.Decode(&head); err != nil {
			t.Fatal(err)
		}
		docs[head.Kind] = &n
	}
	return docs
}

func copyAs(t *testing.T, src, name string) string {
	t.Helper()
	b, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
