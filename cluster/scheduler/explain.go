package scheduler

import (
	"cmp"
	"slices"
)

// failure is a node failing one filter for one reason.
type failure struct {
	filter uint8 // index in pipeline
	code   int
}

// failures counts nodes by the first filter and reason they fail.
type failures map[failure]int

// explain aggregates failure counts into an explanation: one phrase per
// filter and reason, most nodes first, then in pipeline order.
func explain(g *group, sets ...failures) *NoSuitableNodeError {
	total := failures{}
	for _, set := range sets {
		for f, n := range set {
			total[f] += n
		}
	}
	if len(total) == 0 {
		return &NoSuitableNodeError{Reasons: []string{"the cluster has no nodes"}}
	}
	keys := make([]failure, 0, len(total))
	for f := range total {
		keys = append(keys, f)
	}
	slices.SortFunc(keys, func(a, b failure) int {
		if c := cmp.Compare(total[b], total[a]); c != 0 {
			return c
		}
		if c := cmp.Compare(a.filter, b.filter); c != 0 {
			return c
		}
		return cmp.Compare(a.code, b.code)
	})
	reasons := make([]string, len(keys))
	for i, f := range keys {
		reasons[i] = pipeline[f.filter].Explain(g, f.code, total[f])
	}
	return &NoSuitableNodeError{Reasons: reasons}
}
