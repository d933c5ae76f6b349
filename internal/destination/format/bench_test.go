package format_test

import "testing"

// benchSample is a streamed git operation: the most frequent event type in practice.
func benchSample(b *testing.B) []byte { return samples(b)[7].Event }

func BenchmarkOCSF(b *testing.B) {
	enc, _ := setup(b)
	in := benchSample(b)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		var err error
		if buf, err = enc.AppendOCSF(buf[:0], in); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkCEF(b *testing.B) {
	enc, _ := setup(b)
	in := benchSample(b)
	buf := make([]byte, 0, 4096)
	b.ReportAllocs()
	b.SetBytes(int64(len(in)))
	for b.Loop() {
		var err error
		if buf, err = enc.AppendCEF(buf[:0], in); err != nil {
			b.Fatal(err)
		}
	}
}
