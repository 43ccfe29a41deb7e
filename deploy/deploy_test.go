// Package deploy holds deployment files; its test checks them. It is not
// linked into any binary: the Kubernetes API types are a test dependency.
package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/vigil-alerts/vigil/config"
)

// manifests decodes every document of deploy/kubernetes/*.yaml strictly
// into its Kubernetes API type: a misspelt field is an error.
func manifests(t *testing.T) map[string][]any {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests: %v", err)
	}
	out := map[string][]any{}
	for _, f := range files {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(b, []byte("\n---\n")) {
			var meta struct{ Kind string }
			if err := yaml.Unmarshal(doc, &meta); err != nil {
				t.Fatalf("%s document %d: %v", f, i, err)
			}
			var obj any
			switch meta.Kind {
			case "ConfigMap":
				obj = &corev1.ConfigMap{}
			case "Service":
				obj = &corev1.Service{}
			case "PersistentVolumeClaim":
				obj = &corev1.PersistentVolumeClaim{}
			case "Deployment":
				obj = &appsv1.Deployment{}
			case "StatefulSet":
				obj = &appsv1.StatefulSet{}
			default:
				t.Fatalf("%s document %d: kind %q has no decoder here", f, i, meta.Kind)
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Fatalf("%s document %d (%s): %v", f, i, meta.Kind, err)
			}
			out[meta.Kind] = append(out[meta.Kind], obj)
		}
	}
	return out
}

// The served routes, read from the daemon's source: a probe on a path
// Vigil does not serve would restart it forever.
func servedPaths(t *testing.T) []string {
	b, err := os.ReadFile("../cmd/vigil/http.go")
	if err != nil {
		t.Fatal(err)
	}
	var paths []string
	for _, m := range regexp.MustCompile(`HandleFunc\("GET (/[a-z/]*)"`).FindAllStringSubmatch(string(b), -1) {
		paths = append(paths, m[1])
	}
	return paths
}

func TestWorkloads(t *testing.T) {
	m := manifests(t)
	if len(m["Deployment"]) != 1 || len(m["StatefulSet"]) != 1 || len(m["Service"]) == 0 || len(m["ConfigMap"]) < 3 {
		t.Fatalf("want a Deployment, a StatefulSet, Services and ConfigMaps; got %v", keys(m))
	}
	d := m["Deployment"][0].(*appsv1.Deployment)
	s := m["StatefulSet"][0].(*appsv1.StatefulSet)
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		t.Errorf("Deployment replicas %v, want 1 (one writer of the state file)", d.Spec.Replicas)
	}
	if s.Spec.Replicas == nil || *s.Spec.Replicas != 3 {
		t.Errorf("StatefulSet replicas %v, want 3", s.Spec.Replicas)
	}
	served := servedPaths(t)
	for name, pod := range map[string]corev1.PodSpec{"Deployment": d.Spec.Template.Spec, "StatefulSet": s.Spec.Template.Spec} {
		t.Run(name, func(t *testing.T) {
			if psc := pod.SecurityContext; psc == nil || psc.RunAsNonRoot == nil || !*psc.RunAsNonRoot {
				t.Error("pod securityContext.runAsNonRoot is not true")
			}
			c := pod.Containers[0]
			sc := c.SecurityContext
			switch {
			case sc == nil:
				t.Fatal("container has no securityContext")
			case sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem:
				t.Error("readOnlyRootFilesystem is not true")
			case sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation:
				t.Error("allowPrivilegeEscalation is not false")
			case sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot:
				t.Error("runAsNonRoot is not true")
			case sc.Capabilities == nil || !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}):
				t.Error("capabilities do not drop ALL")
			}
			for probe, want := range map[*corev1.Probe]string{c.ReadinessProbe: "/readyz", c.LivenessProbe: "/healthz"} {
				if probe == nil || probe.HTTPGet == nil || probe.HTTPGet.Path != want {
					t.Errorf("probe %+v, want GET %s", probe, want)
					continue
				}
				if !slices.Contains(served, probe.HTTPGet.Path) {
					t.Errorf("probe path %s is not served by the daemon (serves %v)", probe.HTTPGet.Path, served)
				}
			}
			// The state file needs a writable volume under a read-only root.
			writable := false
			for _, vm := range c.VolumeMounts {
				if vm.MountPath == "/var/lib/vigil" && !vm.ReadOnly {
					writable = true
				}
			}
			if !writable {
				t.Error("no writable volume at /var/lib/vigil")
			}
			for _, e := range c.Env {
				if e.Value != "" {
					t.Errorf("env %s has a literal value: secrets come from secretKeyRef", e.Name)
				}
			}
		})
	}
}

// Each config in a ConfigMap loads with Vigil's own loader, as `vigil
// check --config` does, against the rules of vigil-rules.
func TestConfigMapsLoad(t *testing.T) {
	m := manifests(t)
	var rulesCM *corev1.ConfigMap
	var configs []*corev1.ConfigMap
	for _, o := range m["ConfigMap"] {
		cm := o.(*corev1.ConfigMap)
		if cm.Name == "vigil-rules" {
			rulesCM = cm
		} else if _, ok := cm.Data["vigil.yaml"]; ok {
			configs = append(configs, cm)
		}
	}
	if rulesCM == nil || len(configs) != 2 {
		t.Fatalf("want vigil-rules and two configs, got rules %v and %d configs", rulesCM != nil, len(configs))
	}
	for _, cm := range configs {
		t.Run(cm.Name, func(t *testing.T) {
			// The pod's paths, under a temporary root.
			root := t.TempDir()
			for _, d := range []string{"etc/vigil/config", "etc/vigil/rules", "etc/vigil/secrets", "var/lib/vigil"} {
				os.MkdirAll(filepath.Join(root, d), 0o755)
			}
			for name, text := range rulesCM.Data {
				os.WriteFile(filepath.Join(root, "etc/vigil/rules", name), []byte(text), 0o644)
			}
			for _, s := range []string{"http-token", "slack-token"} {
				os.WriteFile(filepath.Join(root, "etc/vigil/secrets", s), []byte("s3cret\n"), 0o600)
			}
			text := cm.Data["vigil.yaml"]
			for _, secret := range []string{"xoxb-", "password:", "token:"} {
				if strings.Contains(text, secret) {
					t.Errorf("the ConfigMap holds %q: secrets belong in the Secret", secret)
				}
			}
			text = strings.NewReplacer("/etc/vigil/", root+"/etc/vigil/", "/var/lib/vigil/", root+"/var/lib/vigil/").Replace(text)
			p := filepath.Join(root, "etc/vigil/config/vigil.yaml")
			os.WriteFile(p, []byte(text), 0o644)
			env := func(k string) (string, bool) { return "s3cret", k == "VIGIL_ETCD_PASSWORD" }
			cfg, err := config.Load(p, config.Options{LookupEnv: env})
			if err != nil {
				t.Fatalf("vigil check --config:\n%v", err)
			}
			rs, err := cfg.LoadRules()
			if err != nil {
				t.Fatalf("rules:\n%v", err)
			}
			if len(rs.Rules()) == 0 {
				t.Error("no rules loaded")
			}
		})
	}
}

func keys(m map[string][]any) []string {
	var k []string
	for n := range m {
		k = append(k, n)
	}
	slices.Sort(k)
	return k
}
