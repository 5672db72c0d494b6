// Package telemetrytest reads hsmhost's /metrics for tests: it scrapes an
// address and sums the series of a metric that carry given labels, with
// Prometheus' own parser of the text format.
package telemetrytest

import (
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
)

// Families are the metric families of one scrape, by name.
type Families map[string]*dto.MetricFamily

// Scrape GETs url (http://host:port/metrics) and parses it.
func Scrape(t testing.TB, url string) Families {
	t.Helper()
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(resp.Body)
		t.Fatalf("scraping %s: %s\n%s", url, resp.Status, b)
	}
	f, err := Parse(resp.Body)
	if err != nil {
		t.Fatalf("scraping %s: %v", url, err)
	}
	return f
}

// Parse reads the text exposition format.
func Parse(r io.Reader) (Families, error) {
	p := expfmt.NewTextParser(model.UTF8Validation)
	return p.TextToMetricFamilies(r)
}

// Value sums the counters, gauges or untyped values of the series of name
// whose labels include labels ("k=v" pairs); 0 when there are none.
func (f Families) Value(name string, labels ...string) float64 {
	var sum float64
	for _, m := range f.series(name, labels) {
		switch {
		case m.Counter != nil:
			sum += m.Counter.GetValue()
		case m.Gauge != nil:
			sum += m.Gauge.GetValue()
		case m.Untyped != nil:
			sum += m.Untyped.GetValue()
		}
	}
	return sum
}

// Count sums the observation counts of a histogram's matching series.
func (f Families) Count(name string, labels ...string) uint64 {
	var n uint64
	for _, m := range f.series(name, labels) {
		n += m.GetHistogram().GetSampleCount()
	}
	return n
}

// Has reports whether a series of name with these labels exists.
func (f Families) Has(name string, labels ...string) bool { return len(f.series(name, labels)) > 0 }

func (f Families) series(name string, labels []string) []*dto.Metric {
	fam := f[name]
	if fam == nil {
		return nil
	}
	var out []*dto.Metric
	for _, m := range fam.Metric {
		have := map[string]string{}
		for _, l := range m.Label {
			have[l.GetName()] = l.GetValue()
		}
		ok := true
		for _, kv := range labels {
			k, v, found := strings.Cut(kv, "=")
			if !found {
				panic(fmt.Sprintf("label %q is not k=v", kv))
			}
			if have[k] != v {
				ok = false
			}
		}
		if ok {
			out = append(out, m)
		}
	}
	return out
}
