"""HdrHistogram V2 as `sendtime loadtest` writes it into results.json (base64): counts as
ZigZag LEB128 varints, negative = a run of empty buckets; quantiles as the Rust crate's
value_at_quantile. Shared by scripts/bench.sh and scripts/bench-generator.sh."""
import base64, math, struct

class Hdr:
    def __init__(self, text):
        self.counts, self.total = [], 0
        if not text:
            self.sub_half_mag, self.unit_mag = 10, 0
            return
        raw = base64.b64decode(text)
        cookie, length, _offset, digits, low, _high, _ratio = struct.unpack(">iiiiqqd", raw[:40])
        assert cookie & ~0x10 == 0x1C849303, hex(cookie)  # V2, 64-bit LEB128 variant
        self.unit_mag = int(math.floor(math.log2(low)))
        sub_count = 2 ** int(math.ceil(math.log2(2 * 10 ** digits)))
        self.sub_half_mag = int(math.log2(sub_count)) - 1
        payload, i = raw[40:40 + length], 0
        while i < len(payload):
            v, shift = 0, 0
            for n in range(9):  # up to 9 bytes; the 9th carries 8 bits
                b = payload[i]; i += 1
                if n == 8:
                    v |= b << 56; break
                v |= (b & 0x7F) << shift; shift += 7
                if not b & 0x80:
                    break
            v = (v >> 1) ^ -(v & 1)
            if v < 0:
                self.counts.extend([0] * -v)
            else:
                self.counts.append(v); self.total += v

    def _bucket(self, index):
        half = 1 << self.sub_half_mag
        bucket = (index >> self.sub_half_mag) - 1
        sub = (index & (half - 1)) + half
        if bucket < 0:
            sub -= half; bucket = 0
        return bucket, sub

    def quantile_ms(self, q):
        if not self.total:
            return 0.0
        want = max(1, math.ceil(q * self.total))
        seen = 0
        for index, c in enumerate(self.counts):
            seen += c
            if seen >= want:
                bucket, sub = self._bucket(index)
                low = sub << (bucket + self.unit_mag)
                return (low + (1 << (bucket + self.unit_mag)) - 1) / 1000.0
        return 0.0

    def merge(self, other):
        if len(self.counts) < len(other.counts):
            self.counts.extend([0] * (len(other.counts) - len(self.counts)))
        for i, c in enumerate(other.counts):
            self.counts[i] += c
        self.total += other.total
        return self

    q = quantile_ms
