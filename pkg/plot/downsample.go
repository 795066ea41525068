package plot

// Downsample reduces pts, taken to be in X order, to at most buckets*2+2
// points that keep its shape: the first and last points, and from each of
// buckets equal runs of the points between them, the one with the smallest
// and the one with the largest Y, in their original order. Every local
// spike therefore survives, and so do the overall minimum and maximum.
// Points whose Y is NaN are never chosen from a run.
//
// If len(pts) <= buckets*2 (or buckets < 1), pts is returned unchanged;
// otherwise the result is a new slice.
func Downsample(pts []Point, buckets int) []Point {
	if buckets < 1 || len(pts) <= buckets*2 {
		return pts
	}
	idx := downsampleIdx(pts, buckets)
	out := make([]Point, len(idx))
	for i, j := range idx {
		out[i] = pts[j]
	}
	return out
}

// downsampleIdx returns the indexes of the points Downsample keeps, in
// increasing order. It needs len(pts) > buckets*2 and buckets >= 1, which
// makes every run non-empty.
func downsampleIdx(pts []Point, buckets int) []int {
	n := len(pts)
	inner := n - 2
	out := make([]int, 0, 2*buckets+2)
	out = append(out, 0)
	for b := 0; b < buckets; b++ {
		s := 1 + b*inner/buckets
		e := 1 + (b+1)*inner/buckets
		lo, hi := -1, -1
		for i := s; i < e; i++ {
			y := pts[i].Y
			if y != y { // NaN
				continue
			}
			if lo < 0 || y < pts[lo].Y {
				lo = i
			}
			if hi < 0 || y > pts[hi].Y {
				hi = i
			}
		}
		switch {
		case lo < 0:
		case lo == hi:
			out = append(out, lo)
		default:
			out = append(out, min(lo, hi), max(lo, hi))
		}
	}
	return append(out, n-1)
}
