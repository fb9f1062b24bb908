import fc from 'fast-check';

/**
 * Generators of bad input for the HTTP fuzz suite: strings people and programs get wrong (NUL, huge, unicode,
 * percent sequences), JSON of the wrong shape, broken JSON, doctored cursors, bad header values.
 */
const NUL = '\u0000';
/** encodeURIComponent throws on a lone surrogate; those are sent as the replacement character */
export const wellFormed = (s: string) => Buffer.from(s, 'utf8').toString('utf8');
const enc = (s: string) => encodeURIComponent(wellFormed(s));

const nasty = fc.constantFrom(
  '',
  ' ',
  NUL,
  `a${NUL}b`,
  '%',
  '%%',
  '%zz',
  '%00',
  '%E0%A4%A',
  '\\',
  '\\u0000',
  '../../etc/passwd',
  "'; DROP TABLE requests; --",
  '💥',
  '\uFEFF',
  '\uD800',
  '\u202Eevil',
  'ＡＢＣ',
  '𝕊𝕚𝕘𝕟',
  'null',
  'undefined',
  'NaN',
  '-1',
  '1e309',
  '0x10',
  'true',
  '{}',
  '[]',
  '<script>alert(1)</script>',
  '${jndi:ldap://x}',
  'CONTOSO\\ada',
  'GUID:5D3F1A2B-0000-4000-8000-000000000001',
);

/** Any text, often a nasty one, sometimes huge. */
export const junkString: fc.Arbitrary<string> = fc.oneof(
  { weight: 4, arbitrary: fc.string({ maxLength: 40 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'grapheme', maxLength: 20 }) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 20 }) },
  { weight: 4, arbitrary: nasty },
  { weight: 1, arbitrary: fc.tuple(fc.string({ maxLength: 5 }), fc.string({ maxLength: 5 })).map(([a, b]) => `${a}${NUL}${b}`) },
  { weight: 1, arbitrary: fc.integer({ min: 2_001, max: 20_000 }).map((n) => 'x'.repeat(n)) },
);

/** A JSON value of any shape, with junk strings in it. */
export const junkJson: fc.Arbitrary<unknown> = fc.letrec<{ value: unknown }>((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    junkString,
    fc.integer(),
    fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.boolean(),
    fc.constant(null),
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(junkString, tie('value'), { maxKeys: 4 }),
  ),
})).value;

/** JSON text that no parser accepts (or, as a bare scalar, a strict body parser refuses). */
export const brokenJson = fc.constantFrom(
  '{',
  '{"a":',
  '[1,',
  '{"a":1}}',
  "{'a':1}",
  '{"a":01}',
  '{"a":NaN}',
  '{"a":undefined}',
  'nul',
  '"just a string"',
  '42',
  'true',
  '{"a":"\\x41"}',
  '{"a":"\\u00"}',
  '\uFEFF{"a":',
  '{"a":1,}',
  '{,}',
  `{"a":"${NUL}"`,
  '{"__proto__":',
  '// comment\n{}',
);

/** A value of the wrong type for a field of the given JSON-schema type. */
export function wrongTypeFor(type: string | undefined): fc.Arbitrary<unknown> {
  const all: Record<string, fc.Arbitrary<unknown>> = {
    string: fc.oneof(fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.string(), { maxLength: 2 }), fc.constant({})),
    integer: fc.oneof(junkString, fc.double({ min: 0.1, max: 0.9 }), fc.constant(null), fc.constant([1]), fc.constant(1e300)),
    number: fc.oneof(junkString, fc.constant(null), fc.constant({})),
    boolean: fc.oneof(junkString, fc.integer(), fc.constant(null)),
    array: fc.oneof(junkString, fc.integer(), fc.constant({})),
    object: fc.oneof(junkString, fc.integer(), fc.constant([])),
  };
  return all[type ?? ''] ?? fc.oneof(fc.constant(Symbol.for('drop')), junkString);
}

/** Path segments a router must refuse or not find: bad escapes, NUL, junk, ids of nothing. */
export const badSegment: fc.Arbitrary<string> = fc.oneof(
  fc.constantFrom(
    '%',
    '%zz',
    '%E0%A4%A',
    '%C0%AF',
    '%00',
    'a%00b',
    '%FF%FE',
    '%ED%A0%80',
    '%u0041',
    '%%41',
    '%2',
    '..%2F..%2Fetc',
    '%2e%2e',
    'x'.repeat(3000),
  ),
  fc.uuid().map((u) => u),
  fc.string({ minLength: 1, maxLength: 30 }).map((s) => `fuzz-${enc(s)}`),
  fc.string({ unit: 'grapheme', minLength: 1, maxLength: 10 }).map((s) => `fuzz-${enc(s)}`),
  fc.constantFrom('00000000-0000-0000-0000-000000000000', 'FFFFFFFF-FFFF-FFFF-FFFF-FFFFFFFFFFFF', '1', '-1', 'null', 'fuzz-nothing'),
);

/** Cursors this API never issued: junk, base64 of junk, and well-formed ones with impossible contents. */
export const doctoredCursor: fc.Arbitrary<string> = fc.oneof(
  junkString.map((s) => enc(s)),
  junkString.map((s) => Buffer.from(s).toString('base64url')),
  fc.constantFrom('-1', '0', '99999999999999999999', 'AAAA', '=', 'eyJ9', '%00'),
  fc
    .tuple(
      fc.constantFrom(
        '275760-09-13T00:00:00.000Z',
        '+275760-09-13T00:00:00.000Z',
        '0000-00-00',
        '1970-01-01T00:00:00Z',
        '2026-13-45',
        'yesterday',
        '',
      ),
      fc.oneof(fc.uuid(), junkString),
    )
    .map(([ts, id]) => Buffer.from(`${ts}|${id}`).toString('base64url')),
  fc.integer({ min: -5, max: 1e12 }).map(String),
);

/** Idempotency-Key values the API must refuse (node's client cannot send control characters at all). */
export const badIdempotencyKey = fc.oneof(
  fc.constantFrom('', ' ', 'has spaces', 'x'.repeat(256), 'é', 'ü-key', 'tab\there'),
  fc.string({ minLength: 256, maxLength: 300 }).filter((s) => /^[\x20-\x7e]*$/.test(s)),
);

/** If-Match values that are malformed, or match no version an item has (long gone, weak, not ours). */
export const badIfMatch = fc.constantFrom(
  '"999"',
  'W/"998"',
  'yesterday',
  '"abc"',
  '"998", "999"',
  'W/"x"',
  '""',
  '"-1"',
  '"1e3"',
  '"9999999999"',
  '1,2',
  'W/',
  '"',
  'é',
);

export const wrongContentType = fc.constantFrom(
  'text/plain',
  'application/x-www-form-urlencoded',
  'application/xml',
  'multipart/form-data; boundary=x',
  'application/jsonx',
  'json',
  'application/json; charset=latin1',
  'application/json; charset=utf-16',
  'image/png',
  '*/*',
);

export const badAuthorization = fc.oneof(
  fc.constantFrom(
    undefined,
    '',
    'Bearer',
    'Bearer ',
    'Basic YWRhOnNlY3JldA==',
    'bearer sk_00000000_nope',
    'Bearer sk_00000000_not-a-real-key-at-all',
    'Token abc',
    'Bearer a b',
  ),
  junkString.filter((s) => /^[\x20-\x7e]*$/.test(s)).map((s) => `Bearer ${s}`),
);
