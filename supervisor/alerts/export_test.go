package alerts

import (
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/corpintel/corpintel/internal/testenv"
)

func TestExportPrometheusRulesCoversEveryRule(t *testing.T) {
	out, err := ExportPrometheusRules(Config{})
	if err != nil {
		t.Fatal(err)
	}
	names, err := exportedAlertNames(out)
	if err != nil {
		t.Fatalf("not YAML: %v\n%s", err, out)
	}
	if want := RuleNames(); !slices.Equal(names, want) {
		t.Errorf("exported %v, want %v", names, want)
	}
	text := string(out)
	for _, want := range []string{
		"expr: corpintel_api_health_consecutive_failures >= 3",
		`expr: absent(corpintel_backup_last_success_timestamp_seconds)` + "\n        for: 25h",
		"predict_linear(corpintel_disk_used_ratio[6h], 259200) >= 1",
		"stage: 21d",
	} {
		if !strings.Contains(text, want) {
			t.Errorf("rule file lacks %q:\n%s", want, text)
		}
	}
	disabled := Config{}
	disabled.Rules.MemoryHigh.Disabled = true
	out, _ = ExportPrometheusRules(disabled)
	if strings.Contains(string(out), "MemoryHigh") {
		t.Error("disabled rule exported")
	}
	if _, err := ExportPrometheusRules(Config{GroupWait: -1}); err == nil {
		t.Error("invalid config exported")
	}
}

// promtool (Debian's prometheus package) accepts the rule file, and its rule unit tests
// agree with the built-in evaluation on the seed's rules.
func TestExportPassesPromtool(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	testenv.Require(t, "promtool", err)
	out, err := ExportPrometheusRules(Config{})
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	rules := filepath.Join(dir, "corpintel.rules.yml")
	if err := os.WriteFile(rules, out, 0o600); err != nil {
		t.Fatal(err)
	}
	check, err := exec.Command(promtool, "check", "rules", rules).CombinedOutput() // #nosec G204 -- test tool
	if err != nil || !strings.Contains(string(check), "SUCCESS") {
		t.Fatalf("promtool check rules: %v\n%s", err, check)
	}
	unit := `rule_files: [corpintel.rules.yml]
evaluation_interval: 15s
tests:
  - interval: 15s
    input_series:
      - series: corpintel_api_health_consecutive_failures
        values: 0 1 2 3 4
      - series: 'corpintel_disk_used_ratio{mount="/"}'
        values: 0.80 0.86 0.86 0.86 0.86
      - series: corpintel_backup_last_success_timestamp_seconds
        values: 0 0 0 0 0
      - series: corpintel_restore_drill_last_success_timestamp_seconds
        values: 0 0 0 0 0
    alert_rule_test:
      - eval_time: 30s
        alertname: APIDown
        exp_alerts: []
      - eval_time: 45s
        alertname: APIDown
        exp_alerts:
          - exp_labels: {severity: critical}
            exp_annotations:
              summary: the API failed 3 health checks in a row
              description: the API failed its health check several times in a row
      - eval_time: 30s
        alertname: DiskSpaceLow
        exp_alerts:
          - exp_labels: {severity: warning, mount: /}
            exp_annotations:
              summary: filesystem / is 86% full
              description: a filesystem is fuller than the threshold
`
	unitFile := filepath.Join(dir, "unit.yml")
	if err := os.WriteFile(unitFile, []byte(unit), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "test", "rules", unitFile) // #nosec G204 -- test tool
	cmd.Dir = dir
	if res, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("promtool test rules: %v\n%s", err, res)
	}
}
