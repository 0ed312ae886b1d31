package report

import (
	"fmt"
	"math"
	"slices"
	"strings"
)

// SVG plots latency percentiles against offered rate for both systems, on
// log-log axes: commit → JetStream ack on the left, due → consumer receipt
// (open loop, coordinated omission counted) on the right. Where rounds
// disagree the worst value is drawn. Empty when no latency was measured.
func (r *Results) SVG() string {
	if len(r.Latency) == 0 {
		return ""
	}
	type series struct {
		system, pct string
		pts         [][2]float64 // rate, ms
	}
	pcts := []struct {
		name string
		get  func(Percentiles) float64
		dash string
	}{
		{"p50", func(p Percentiles) float64 { return p.P50 }, ""},
		{"p99", func(p Percentiles) float64 { return p.P99 }, "7,4"},
		{"p99.9", func(p Percentiles) float64 { return p.P999 }, "2,3"},
		{"max", func(p Percentiles) float64 { return p.Max }, "1,5"},
	}
	panels := []struct {
		title string
		get   func(LatencyRun) Percentiles
	}{
		{"commit → JetStream ack", func(l LatencyRun) Percentiles { return l.CommitAck }},
		{"due → consumer receipt (open loop)", func(l LatencyRun) Percentiles { return l.IntendedRecv }},
	}
	var rates []float64
	for _, l := range r.Latency {
		if !slices.Contains(rates, l.Rate) {
			rates = append(rates, l.Rate)
		}
	}
	slices.Sort(rates)
	data := make([][]series, len(panels))
	lo, hi := math.Inf(1), math.Inf(-1)
	for i, p := range panels {
		for _, sys := range []string{Relay, Poller} {
			for _, pc := range pcts {
				s := series{system: sys, pct: pc.name}
				for _, rate := range rates {
					v := math.Inf(-1)
					for _, l := range r.Latency {
						if l.System == sys && l.Rate == rate {
							v = max(v, pc.get(p.get(l)))
						}
					}
					if v > 0 {
						s.pts = append(s.pts, [2]float64{rate, v})
						lo, hi = min(lo, v), max(hi, v)
					}
				}
				if len(s.pts) > 0 {
					data[i] = append(data[i], s)
				}
			}
		}
	}
	if math.IsInf(lo, 1) {
		return ""
	}
	yLo := math.Pow(10, math.Floor(math.Log10(lo)))
	yHi := math.Pow(10, math.Ceil(math.Log10(hi)))
	if yHi <= yLo {
		yHi = yLo * 10
	}
	xLo, xHi := rates[0]/1.6, rates[len(rates)-1]*1.6

	const (
		width, height = 980, 470
		pw, ph        = 380, 300
		top           = 60
	)
	colors := map[string]string{Relay: "#1f6fb4", Poller: "#e0701a"}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" font-family="sans-serif" font-size="12">`+"\n", width, height, width, height)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", width, height)
	fmt.Fprintf(&b, `<text x="%d" y="24" font-size="16" text-anchor="middle">Latency vs offered rate, %s (worst of %d rounds)</text>`+"\n",
		width/2, r.Started.Format("2006-01-02"), max(r.Settings.Rounds, 1))
	for i, p := range panels {
		x0 := 80 + i*(pw+110)
		px := func(rate float64) float64 {
			return float64(x0) + pw*math.Log(rate/xLo)/math.Log(xHi/xLo)
		}
		py := func(v float64) float64 {
			return float64(top+ph) - ph*math.Log(v/yLo)/math.Log(yHi/yLo)
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" font-size="14" text-anchor="middle">%s</text>`+"\n", x0+pw/2, top-12, esc(p.title))
		fmt.Fprintf(&b, `<rect x="%d" y="%d" width="%d" height="%d" fill="none" stroke="#444"/>`+"\n", x0, top, pw, ph)
		for d := yLo; d <= yHi*1.0001; d *= 10 {
			for _, m := range []float64{1, 2, 5} {
				v := d * m
				if v > yHi*1.0001 {
					break
				}
				y := py(v)
				stroke := "#ddd"
				if m == 1 {
					stroke = "#bbb"
				}
				fmt.Fprintf(&b, `<line x1="%d" y1="%.1f" x2="%d" y2="%.1f" stroke="%s"/>`+"\n", x0, y, x0+pw, y, stroke)
				fmt.Fprintf(&b, `<text x="%d" y="%.1f" text-anchor="end" dominant-baseline="middle">%s</text>`+"\n", x0-6, y, trimFloat(v))
			}
		}
		for _, rate := range rates {
			x := px(rate)
			fmt.Fprintf(&b, `<line x1="%.1f" y1="%d" x2="%.1f" y2="%d" stroke="#ddd"/>`+"\n", x, top, x, top+ph)
			fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", x, top+ph+16, esc(kilo(rate)))
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle">offered events/s</text>`+"\n", x0+pw/2, top+ph+36)
		fmt.Fprintf(&b, `<text x="%d" y="%d" text-anchor="middle" transform="rotate(-90 %d %d)">ms</text>`+"\n", x0-50, top+ph/2, x0-50, top+ph/2)
		for _, s := range data[i] {
			dash := ""
			for _, pc := range pcts {
				if pc.name == s.pct && pc.dash != "" {
					dash = fmt.Sprintf(` stroke-dasharray="%s"`, pc.dash)
				}
			}
			var pts []string
			for _, pt := range s.pts {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", px(pt[0]), py(pt[1])))
			}
			fmt.Fprintf(&b, `<polyline points="%s" fill="none" stroke="%s" stroke-width="2"%s/>`+"\n", strings.Join(pts, " "), colors[s.system], dash)
			for _, pt := range s.pts {
				fmt.Fprintf(&b, `<circle cx="%.1f" cy="%.1f" r="2.5" fill="%s"/>`+"\n", px(pt[0]), py(pt[1]), colors[s.system])
			}
		}
	}
	// Legend: colour is the system, dash the percentile.
	ly := top + ph + 62
	x := 80
	for _, sys := range []string{Relay, Poller} {
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="%s" stroke-width="3"/>`+"\n", x, ly, x+30, ly, colors[sys])
		fmt.Fprintf(&b, `<text x="%d" y="%d" dominant-baseline="middle">%s</text>`+"\n", x+36, ly, sys)
		x += 120
	}
	for _, pc := range pcts {
		dash := ""
		if pc.dash != "" {
			dash = fmt.Sprintf(` stroke-dasharray="%s"`, pc.dash)
		}
		fmt.Fprintf(&b, `<line x1="%d" y1="%d" x2="%d" y2="%d" stroke="#333" stroke-width="2"%s/>`+"\n", x, ly, x+30, ly, dash)
		fmt.Fprintf(&b, `<text x="%d" y="%d" dominant-baseline="middle">%s</text>`+"\n", x+36, ly, pc.name)
		x += 100
	}
	b.WriteString("</svg>\n")
	return b.String()
}

func trimFloat(v float64) string {
	s := fmt.Sprintf("%.3f", v)
	s = strings.TrimRight(s, "0")
	return strings.TrimSuffix(s, ".")
}

func esc(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;").Replace(s)
}
