/*
 * C test of the trustpool C API against the shipped swtpm evidence.
 *
 *   test <test-vectors/swtpm directory> [<compiled whitelist learned from eventlog/>]
 *
 * Checks exact results: the genuine ECDSA P-256 quote (and the RSA one when the build has
 * RSA) verifies; each kind of corruption gives its own error code; every truncation of the
 * attest gives TP_ERR_ATTEST_MALFORMED (and of the signature, AK and PCR file their codes);
 * the synthetic event log is iterated and replayed, and the replay equals the quoted PCRs;
 * with a whitelist (`trustpool policy learn` from that evidence, compiled), the evidence is
 * appraised trusted and each deviation gives the expected finding.
 * Prints "N passed, M failed" and exits non-zero on any failure.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "trustpool.h"

static int passed, failed;

#define CHECK(cond, ...)                                                                   \
  do {                                                                                     \
    if (cond) {                                                                            \
      passed++;                                                                            \
    } else {                                                                               \
      failed++;                                                                            \
      printf("FAIL %s:%d: ", __FILE__, __LINE__);                                          \
      printf(__VA_ARGS__);                                                                 \
      printf("\n");                                                                        \
    }                                                                                      \
  } while (0)

#define CHECK_RC(got, want, what)                                                          \
  do {                                                                                     \
    int got_ = (got), want_ = (want);                                                      \
    CHECK(got_ == want_, "%s: got %d (%s), want %d (%s)", what, got_, tp_strerror(got_),   \
          want_, tp_strerror(want_));                                                      \
  } while (0)

typedef struct {
  uint8_t *bytes;
  size_t len;
} buf;

static const char *dir;

static buf load(const char *name) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  FILE *f = fopen(path, "rb");
  if (!f) {
    printf("cannot open %s\n", path);
    exit(2);
  }
  buf b = {NULL, 0};
  size_t cap = 0;
  for (;;) {
    if (b.len == cap) {
      cap = cap ? 2 * cap : 4096;
      b.bytes = realloc(b.bytes, cap);
      if (!b.bytes) exit(2);
    }
    size_t n = fread(b.bytes + b.len, 1, cap - b.len, f);
    if (n == 0) break;
    b.len += n;
  }
  fclose(f);
  return b;
}

/* An exact-size heap copy of the first n bytes (so sanitizers see any overread). */
static uint8_t *copy(const buf *b, size_t n) {
  uint8_t *p = malloc(n ? n : 1);
  if (!p) exit(2);
  memcpy(p, b->bytes, n);
  return p;
}

static size_t unhex(const buf *hex, uint8_t *out, size_t cap) {
  size_t n = 0;
  for (size_t i = 0; i + 1 < hex->len && n < cap; i += 2) {
    unsigned v;
    char two[3] = {(char)hex->bytes[i], (char)hex->bytes[i + 1], 0};
    if (sscanf(two, "%2x", &v) != 1) break;
    out[n++] = (uint8_t)v;
  }
  return n;
}

static const tp_pcr_bank *bank(const tp_pcrs *p, uint16_t alg) {
  for (uint32_t i = 0; i < p->bank_count; i++)
    if (p->banks[i].alg == alg) return &p->banks[i];
  return NULL;
}

enum { ALG_SHA1 = 0x0004, ALG_SHA256 = 0x000B };

typedef struct {
  const buf *log;
  int events;
  int extends_per_pcr[TP_NUM_PCRS];
  int bad_pointers;
  int bad_digests;
  int stop_at;  /* stop when this many events were seen (0: never) */
  size_t sha256_digest_offset_of_event_5;
  size_t offsets[64]; /* record offsets of the first 64 events */
} walk;

static int on_event(const tp_event *ev, void *ctx) {
  walk *w = ctx;
  const uint8_t *lo = w->log->bytes, *hi = w->log->bytes + w->log->len;
  if ((uint32_t)w->events != ev->index) w->bad_pointers++;
  if (ev->data_len && (ev->data < lo || ev->data + ev->data_len > hi)) w->bad_pointers++;
  if (ev->offset >= w->log->len) w->bad_pointers++;
  if (ev->digest_count > TP_MAX_EVENT_DIGESTS) w->bad_digests++;
  for (uint32_t i = 0; i < ev->digest_count && i < TP_MAX_EVENT_DIGESTS; i++) {
    const tp_event_digest *d = &ev->digests[i];
    if (d->bytes < lo || d->bytes + d->len > hi) w->bad_pointers++;
    if (ev->index > 0 && !((d->alg == ALG_SHA1 && d->len == 20) ||
                           (d->alg == ALG_SHA256 && d->len == 32)))
      w->bad_digests++;
    if (ev->index == 5 && d->alg == ALG_SHA256)
      w->sha256_digest_offset_of_event_5 = (size_t)(d->bytes - lo);
  }
  if (ev->index > 0 && ev->digest_count != 2) w->bad_digests++;
  if (ev->event_type != 0x3 && ev->pcr < TP_NUM_PCRS) w->extends_per_pcr[ev->pcr]++;
  if (w->events < 64) w->offsets[w->events] = ev->offset;
  w->events++;
  return w->stop_at && w->events >= w->stop_at;
}

int main(int argc, char **argv) {
  if (argc != 2 && argc != 3) {
    fprintf(stderr, "usage: %s <test-vectors/swtpm directory> [<whitelist.tpw>]\n", argv[0]);
    return 2;
  }
  dir = argv[1];
  printf("trustpool C API %s, features 0x%x\n", tp_version(), tp_features());

  buf ak = load("eventlog/ak.pub"), attest = load("eventlog/quote.attest"),
      sig = load("eventlog/quote.sig"), pcrs = load("eventlog/quote.pcrs"),
      nonce_hex = load("eventlog/nonce.hex"), log = load("eventlog/synthetic.bin"),
      rsa_ak = load("rsa-rsassa.pub"), other_ecc_ak = load("ecc-p256.pub");
  uint8_t nonce[64];
  size_t nonce_len = unhex(&nonce_hex, nonce, sizeof nonce);
  CHECK(nonce_len == 20, "nonce.hex has %zu bytes", nonce_len);

  static tp_pcrs quoted, replayed;
  size_t w_sha256_digest_offset_of_event_5 = 0;

  /* The genuine quote. */
  CHECK_RC(tp_quote_verify(ak.bytes, ak.len, attest.bytes, attest.len, sig.bytes, sig.len,
                           nonce, nonce_len, pcrs.bytes, pcrs.len, &quoted),
           TP_OK, "genuine P-256 quote");
  CHECK_RC(tp_quote_verify(ak.bytes, ak.len, attest.bytes, attest.len, sig.bytes, sig.len,
                           nonce, nonce_len, pcrs.bytes, pcrs.len, NULL),
           TP_OK, "genuine P-256 quote, no PCR output");
  CHECK(quoted.bank_count == 2, "quoted banks: %u", quoted.bank_count);
  const tp_pcr_bank *q1 = bank(&quoted, ALG_SHA1), *q256 = bank(&quoted, ALG_SHA256);
  CHECK(q1 && q1->present == 0xFF && q1->digest_len == 20, "quoted sha1:0-7");
  CHECK(q256 && q256->present == 0x1FF && q256->digest_len == 32, "quoted sha256:0-8");

  /* One corruption each, each with its own code. */
  {
    uint8_t *a = copy(&attest, attest.len);
    a[attest.len - 1] ^= 1; /* last byte of pcrDigest: parses, signature fails */
    CHECK_RC(tp_quote_verify(ak.bytes, ak.len, a, attest.len, sig.bytes, sig.len, nonce,
                             nonce_len, pcrs.bytes, pcrs.len, NULL),
             TP_ERR_BAD_SIGNATURE, "flipped attest byte");
    a[attest.len - 1] ^= 1;
    a[0] ^= 1; /* magic */
    CHECK_RC(tp_quote_verify(ak.bytes, ak.len, a, attest.len, sig.bytes, sig.len, nonce,
                             nonce_len, pcrs.bytes, pcrs.len, NULL),
             TP_ERR_BAD_MAGIC, "flipped magic");
    free(a);

    uint8_t *longer = malloc(attest.len + 1);
    memcpy(longer, attest.bytes, attest.len);
    longer[attest.len] = 0;
    CHECK_RC(tp_quote_verify(ak.bytes, ak.len, longer, attest.len + 1, sig.bytes, sig.len,
                             nonce, nonce_len, pcrs.bytes, pcrs.len, NULL),
             TP_ERR_ATTEST_MALFORMED, "attest with a trailing byte");
    free(longer);

    uint8_t n2[64];
    memcpy(n2, nonce, nonce_len);
    n2[0] ^= 1;
    CHECK_RC(tp_quote_verify(ak.bytes, ak.len, attest.bytes, attest.len, sig.bytes, sig.len,
                             n2, nonce_len, pcrs.bytes, pcrs.len, NULL),
             TP_ERR_NONCE_MISMATCH, "wrong nonce");

    uint8_t *p = copy(&pcrs, pcrs.len);
    /* First PCR value: after the TPML_PCR_SELECTION struct (132 bytes), the TPML_DIGEST list
     * count (4), the list's count (4) and the TPM2B size (2). */
    p[132 + 4 + 4 + 2] ^= 1;
    CHECK_RC(tp_quote_verify(ak.bytes, ak.len, attest.bytes, attest.len, sig.bytes, sig.len,
                             nonce, nonce_len, p, pcrs.len, NULL),
             TP_ERR_PCR_DIGEST_MISMATCH, "flipped PCR value");
    free(p);

    CHECK_RC(tp_quote_verify(rsa_ak.bytes, rsa_ak.len, attest.bytes, attest.len, sig.bytes,
                             sig.len, nonce, nonce_len, pcrs.bytes, pcrs.len, NULL),
             TP_ERR_SCHEME_MISMATCH, "RSA key for an ECDSA quote");
    CHECK_RC(tp_quote_verify(other_ecc_ak.bytes, other_ecc_ak.len, attest.bytes, attest.len,
                             sig.bytes, sig.len, nonce, nonce_len, pcrs.bytes, pcrs.len, NULL),
             TP_ERR_BAD_SIGNATURE, "another P-256 key");
  }

  /* Every truncation. */
  {
    int bad = 0;
    for (size_t n = 0; n < attest.len; n++) {
      uint8_t *a = copy(&attest, n);
      int rc = tp_quote_verify(ak.bytes, ak.len, a, n, sig.bytes, sig.len, nonce, nonce_len,
                               pcrs.bytes, pcrs.len, NULL);
      if (rc != TP_ERR_ATTEST_MALFORMED) {
        printf("  attest truncated to %zu bytes: %d (%s)\n", n, rc, tp_strerror(rc));
        bad++;
      }
      free(a);
    }
    CHECK(bad == 0, "%d of %zu attest truncations not TP_ERR_ATTEST_MALFORMED", bad, attest.len);

    bad = 0;
    for (size_t n = 0; n < sig.len; n++) {
      uint8_t *s = copy(&sig, n);
      int rc = tp_quote_verify(ak.bytes, ak.len, attest.bytes, attest.len, s, n, nonce,
                               nonce_len, pcrs.bytes, pcrs.len, NULL);
      bad += rc != TP_ERR_SIGNATURE_MALFORMED;
      free(s);
    }
    CHECK(bad == 0, "%d of %zu signature truncations not TP_ERR_SIGNATURE_MALFORMED", bad,
          sig.len);

    bad = 0;
    for (size_t n = 0; n < ak.len; n++) {
      uint8_t *k = copy(&ak, n);
      int rc = tp_quote_verify(k, n, attest.bytes, attest.len, sig.bytes, sig.len, nonce,
                               nonce_len, pcrs.bytes, pcrs.len, NULL);
      bad += rc != TP_ERR_AK_MALFORMED;
      free(k);
    }
    CHECK(bad == 0, "%d of %zu AK truncations not TP_ERR_AK_MALFORMED", bad, ak.len);

    bad = 0;
    for (size_t n = 0; n < pcrs.len; n++) {
      uint8_t *p = copy(&pcrs, n);
      int rc = tp_quote_verify(ak.bytes, ak.len, attest.bytes, attest.len, sig.bytes, sig.len,
                               nonce, nonce_len, p, n, NULL);
      bad += rc != TP_ERR_PCR_FILE_MALFORMED;
      free(p);
    }
    CHECK(bad == 0, "%d of %zu PCR file truncations not TP_ERR_PCR_FILE_MALFORMED", bad,
          pcrs.len);
  }

  /* Arguments. */
  CHECK_RC(tp_quote_verify(NULL, ak.len, attest.bytes, attest.len, sig.bytes, sig.len, nonce,
                           nonce_len, pcrs.bytes, pcrs.len, NULL),
           TP_ERR_INVALID_ARGUMENT, "NULL AK with a length");
  CHECK_RC(tp_quote_verify(ak.bytes, ak.len, NULL, attest.len, sig.bytes, sig.len, nonce,
                           nonce_len, pcrs.bytes, pcrs.len, NULL),
           TP_ERR_INVALID_ARGUMENT, "NULL attest with a length");
  CHECK_RC(tp_quote_verify(ak.bytes, ak.len, attest.bytes, attest.len, NULL, sig.len, nonce,
                           nonce_len, pcrs.bytes, pcrs.len, NULL),
           TP_ERR_INVALID_ARGUMENT, "NULL signature with a length");
  CHECK_RC(tp_quote_verify(ak.bytes, ak.len, attest.bytes, attest.len, sig.bytes, sig.len, NULL,
                           nonce_len, pcrs.bytes, pcrs.len, NULL),
           TP_ERR_INVALID_ARGUMENT, "NULL nonce with a length");
  CHECK_RC(tp_quote_verify(ak.bytes, ak.len, attest.bytes, attest.len, sig.bytes, sig.len,
                           nonce, nonce_len, NULL, pcrs.len, NULL),
           TP_ERR_INVALID_ARGUMENT, "NULL PCR file with a length");
  CHECK_RC(tp_quote_verify(ak.bytes, ak.len, NULL, 0, sig.bytes, sig.len, nonce, nonce_len,
                           pcrs.bytes, pcrs.len, NULL),
           TP_ERR_ATTEST_MALFORMED, "NULL attest of length 0");
  CHECK_RC(tp_quote_verify(ak.bytes, ak.len, attest.bytes, attest.len, sig.bytes, sig.len, NULL,
                           0, pcrs.bytes, pcrs.len, NULL),
           TP_ERR_NONCE_MISMATCH, "empty nonce");
  CHECK_RC(tp_quote_verify(ak.bytes, ak.len, attest.bytes, attest.len, sig.bytes, sig.len,
                           nonce, nonce_len, pcrs.bytes, pcrs.len, (tp_pcrs *)((char *)&quoted + 1)),
           TP_ERR_INVALID_ARGUMENT, "misaligned output");
  CHECK_RC(tp_eventlog_replay(log.bytes, log.len, NULL), TP_ERR_INVALID_ARGUMENT,
           "replay into NULL");
  CHECK_RC(tp_eventlog_foreach(NULL, 1, NULL, NULL), TP_ERR_INVALID_ARGUMENT,
           "NULL log with a length");
  CHECK_RC(tp_pcrs_compare(NULL, &quoted), TP_ERR_INVALID_ARGUMENT, "compare NULL");

  /* RSA-2048 quote: verifies when the build has RSA, else is reported unsupported. */
  {
    buf ra = load("rsa-rsassa.sha256.attest"), rs = load("rsa-rsassa.sha256.sig"),
        rp = load("rsa-rsassa.sha256.pcrs");
    uint8_t rn[20];
    buf rn_hex = {(uint8_t *)"26c554c2f0deca4a3f53693e5e5dda39b80d8656", 40};
    unhex(&rn_hex, rn, sizeof rn);
    int want = (tp_features() & TP_FEATURE_RSA) ? TP_OK : TP_ERR_UNSUPPORTED;
    CHECK_RC(tp_quote_verify(rsa_ak.bytes, rsa_ak.len, ra.bytes, ra.len, rs.bytes, rs.len, rn,
                             sizeof rn, rp.bytes, rp.len, NULL),
             want, "RSA-2048 RSASSA quote");
    free(ra.bytes);
    free(rs.bytes);
    free(rp.bytes);
  }

  /* The event log: iterate, replay, compare with the quote. */
  {
    walk w;
    memset(&w, 0, sizeof w);
    w.log = &log;
    int n = tp_eventlog_foreach(log.bytes, log.len, on_event, &w);
    CHECK(n == 22 && w.events == 22, "events: returned %d, visited %d, want 22", n, w.events);
    CHECK(w.bad_pointers == 0, "%d event pointers outside the log", w.bad_pointers);
    CHECK(w.bad_digests == 0, "%d events with unexpected digests", w.bad_digests);
    CHECK(w.extends_per_pcr[0] == 3 && w.extends_per_pcr[7] == 6 && w.extends_per_pcr[4] == 3 &&
              w.extends_per_pcr[5] == 3 && w.extends_per_pcr[8] == 2,
          "extends per PCR: 0:%d 4:%d 5:%d 7:%d 8:%d", w.extends_per_pcr[0],
          w.extends_per_pcr[4], w.extends_per_pcr[5], w.extends_per_pcr[7],
          w.extends_per_pcr[8]);
    CHECK_RC(tp_eventlog_foreach(log.bytes, log.len, NULL, NULL), 22, "count without callback");

    walk stop;
    memset(&stop, 0, sizeof stop);
    stop.log = &log;
    stop.stop_at = 3;
    CHECK_RC(tp_eventlog_foreach(log.bytes, log.len, on_event, &stop), 3, "callback stops");

    CHECK_RC(tp_eventlog_replay(log.bytes, log.len, &replayed), TP_OK, "replay");
    int want_banks = (tp_features() & TP_FEATURE_SHA1) ? 2 : 1;
    CHECK(replayed.bank_count == (uint32_t)want_banks, "replayed banks: %u",
          replayed.bank_count);
    const tp_pcr_bank *r256 = bank(&replayed, ALG_SHA256);
    CHECK(r256 && r256->present == 0xFFFFFF, "replayed sha256 PCRs present");
    CHECK_RC(tp_pcrs_compare(&replayed, &quoted),
             (tp_features() & TP_FEATURE_SHA1) ? TP_OK : TP_ERR_PCR_NOT_REPLAYED,
             "replayed log = quoted PCRs");
    if (r256 && q256)
      CHECK(memcmp(r256->values[8], q256->values[8], 32) == 0, "sha256 PCR 8 replayed = quoted");

    /* A changed digest in the log: still a log, but the replay no longer matches. */
    CHECK(w.sha256_digest_offset_of_event_5 > 0, "found event 5's sha256 digest");
    w_sha256_digest_offset_of_event_5 = w.sha256_digest_offset_of_event_5;
    uint8_t *bad = copy(&log, log.len);
    bad[w.sha256_digest_offset_of_event_5] ^= 1;
    static tp_pcrs bad_replay;
    CHECK_RC(tp_eventlog_replay(bad, log.len, &bad_replay), TP_OK, "replay of a changed log");
    CHECK_RC(tp_pcrs_compare(&bad_replay, &quoted), TP_ERR_PCR_MISMATCH, "changed log vs quote");
    free(bad);

    /* Every truncation: malformed, or a shorter log whose replay no longer matches the quote
     * (the last event extends quoted PCR 5). Cut at an event boundary it must be a shorter
     * log; cut where only zero bytes of the next record remain too (trailing zeros are
     * accepted as padding, as Linux pads the firmware log). */
    int unexpected = 0, boundaries = 0;
    for (size_t len = 0; len < log.len; len++) {
      uint8_t *t = copy(&log, len);
      int rc = tp_eventlog_replay(t, len, &bad_replay);
      int boundary = 0;
      for (int i = 1; i < w.events && i < 64; i++) boundary |= w.offsets[i] == len;
      boundaries += boundary;
      if (rc == TP_OK) {
        if (tp_pcrs_compare(&bad_replay, &quoted) != TP_ERR_PCR_MISMATCH) unexpected++;
      } else if (rc != TP_ERR_EVENTLOG_MALFORMED || boundary) {
        unexpected++;
      }
      free(t);
    }
    CHECK(unexpected == 0, "%d log truncations neither malformed nor mismatching", unexpected);
    CHECK(boundaries == 21, "%d event boundaries, want 21", boundaries);
    CHECK_RC(tp_eventlog_replay(log.bytes, 0, &bad_replay), TP_ERR_EVENTLOG_MALFORMED,
             "empty log");
  }

  /* Appraisal against a whitelist learned from this evidence. */
  if (argc == 3) {
    FILE *f = fopen(argv[2], "rb");
    if (!f) {
      printf("cannot open %s\n", argv[2]);
      return 2;
    }
    static uint8_t wl_bytes[1 << 20];
    size_t wl_len = fread(wl_bytes, 1, sizeof wl_bytes, f);
    fclose(f);
    static tp_verdict v;
    int rc;

#define APPRAISE(wl, wl_len_, a, a_len, lg, lg_len, flags)                                   \
  tp_appraise((wl), (wl_len_), ak.bytes, ak.len, (a), (a_len), sig.bytes, sig.len, nonce,     \
              nonce_len, pcrs.bytes, pcrs.len, (lg), (lg_len), (flags), &v)

    rc = APPRAISE(wl_bytes, wl_len, attest.bytes, attest.len, log.bytes, log.len, 0);
    CHECK_RC(rc, TP_OK, "appraise the learned host");
    int fails = 0;
    for (uint32_t i = 0; i < v.finding_count; i++) {
      fails += v.findings[i].fail != 0;
      if (v.findings[i].fail) printf("  unexpected: %s\n", v.findings[i].message);
    }
    CHECK(v.trusted == 1 && fails == 0, "trusted %u with %d failures", v.trusted, fails);
    CHECK(v.has_firmware_version == 1, "firmware version reported");
    CHECK(v.events_checked > 0, "events checked: %u", v.events_checked);
    int zero = 1;
    for (int i = 0; i < 32; i++) zero &= v.whitelist_sha256[i] == 0;
    CHECK(!zero, "whitelist digest reported");

    /* A changed event digest (event 5, PCR 7): the replay no longer gives the quoted PCR 7. */
    uint8_t *bad = copy(&log, log.len);
    bad[w_sha256_digest_offset_of_event_5] ^= 1;
    rc = APPRAISE(wl_bytes, wl_len, attest.bytes, attest.len, bad, log.len, 0);
    CHECK_RC(rc, TP_ERR_UNTRUSTED, "appraise a changed log");
    int replay_pcr7 = 0;
    for (uint32_t i = 0; i < v.finding_count; i++) {
      const tp_finding *fd = &v.findings[i];
      if (fd->fail) printf("  changed log: [%s] %s\n", tp_rule_name(fd->rule), fd->message);
      replay_pcr7 |= fd->fail && fd->rule == TP_RULE_LOG_REPLAY && fd->pcr == 7 &&
                     fd->seen.len == 32 && fd->expected.len == 32 && fd->message[0];
    }
    CHECK(v.trusted == 0 && replay_pcr7, "changed log: a log-replay failure on PCR 7");
    free(bad);

    /* A tampered quote: one finding, the quote's own error. */
    uint8_t *a = copy(&attest, attest.len);
    a[attest.len - 1] ^= 1;
    rc = APPRAISE(wl_bytes, wl_len, a, attest.len, log.bytes, log.len, 0);
    CHECK_RC(rc, TP_ERR_UNTRUSTED, "appraise a tampered quote");
    CHECK(v.finding_count == 1 && v.findings[0].rule == TP_RULE_QUOTE &&
              v.findings[0].error == TP_ERR_BAD_SIGNATURE && v.has_firmware_version == 0,
          "tampered quote: quote finding with TP_ERR_BAD_SIGNATURE (%u findings, rule %s, "
          "error %d)",
          v.finding_count, tp_rule_name(v.findings[0].rule), v.findings[0].error);
    free(a);

    /* The whitelist requires the event log. */
    rc = APPRAISE(wl_bytes, wl_len, attest.bytes, attest.len, NULL, 0, 0);
    CHECK_RC(rc, TP_ERR_UNTRUSTED, "appraise without the event log");
    int missing = 0;
    for (uint32_t i = 0; i < v.finding_count; i++)
      missing |= v.findings[i].fail && v.findings[i].rule == TP_RULE_EVENTLOG_MISSING;
    CHECK(missing, "no log: an eventlog-missing failure");

    /* Unusable inputs: an error code and a zeroed verdict. */
    int bad_trunc = 0;
    for (size_t n = 0; n < wl_len; n++) {
      uint8_t *t = malloc(n ? n : 1);
      memcpy(t, wl_bytes, n);
      rc = APPRAISE(t, n, attest.bytes, attest.len, log.bytes, log.len, 0);
      bad_trunc += rc != TP_ERR_WHITELIST_MALFORMED || v.trusted || v.finding_count;
      free(t);
    }
    CHECK(bad_trunc == 0, "%d of %zu whitelist truncations not TP_ERR_WHITELIST_MALFORMED",
          bad_trunc, wl_len);
    CHECK_RC(APPRAISE(wl_bytes, wl_len, attest.bytes, attest.len, log.bytes, log.len, 0x80),
             TP_ERR_INVALID_ARGUMENT, "unknown flag");
    CHECK_RC(tp_appraise(wl_bytes, wl_len, ak.bytes, ak.len, attest.bytes, attest.len, sig.bytes,
                         sig.len, nonce, nonce_len, pcrs.bytes, pcrs.len, log.bytes, log.len, 0,
                         NULL),
             TP_ERR_INVALID_ARGUMENT, "NULL verdict");
    CHECK(strcmp(tp_rule_name(TP_RULE_LOG_REPLAY), "log-replay") == 0 &&
              strcmp(tp_rule_name(999), "unknown") == 0,
          "rule names");
#undef APPRAISE
  } else {
    printf("no whitelist given: appraisal not tested\n");
  }

  /* Error strings. */
  {
    const char *unknown = tp_strerror(12345);
    CHECK(unknown && strstr(unknown, "unknown"), "unknown code");
    int bad = 0;
    for (int code = TP_ERR_WHITELIST_MALFORMED; code <= TP_OK; code++) {
      const char *s = tp_strerror(code);
      if (!s || !*s || s == unknown || strcmp(s, unknown) == 0) bad++;
      for (int other = code + 1; other <= TP_OK; other++)
        if (strcmp(s, tp_strerror(other)) == 0) bad++;
    }
    CHECK(bad == 0, "%d error codes without their own message", bad);
  }

  free(ak.bytes);
  free(attest.bytes);
  free(sig.bytes);
  free(pcrs.bytes);
  free(nonce_hex.bytes);
  free(log.bytes);
  free(rsa_ak.bytes);
  free(other_ecc_ak.bytes);
  printf("%d passed, %d failed\n", passed, failed);
  return failed ? 1 : 0;
}
