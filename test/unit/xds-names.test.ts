/** Requested resource names: one shared sorted array per set; an ACK that repeats them allocates nothing. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { canonicalNames } from '../../src/xds/connection.js';

test('equal sets share one sorted array, whatever the order they arrive in', () => {
  const a = canonicalNames(['b', 'a', 'c'], undefined);
  assert.deepEqual(a, ['a', 'b', 'c']);
  assert.equal(canonicalNames(['c', 'b', 'a'], undefined), a, 'same set from another stream: the same array');
  assert.equal(canonicalNames(['a', 'b', 'c'], a), a, 'an ACK repeating the names in order');
  assert.equal(canonicalNames(['c', 'a', 'b'], a), a, 'an ACK repeating them in another order');
  const b = canonicalNames(['a', 'b'], a);
  assert.notEqual(b, a, 'a different set is a different array (resubscribe)');
  assert.deepEqual(b, ['a', 'b']);
  assert.deepEqual(canonicalNames([], undefined), []);
});

test('the caller\'s array is never kept or reordered', () => {
  const incoming = ['z', 'y'];
  const c = canonicalNames(incoming, undefined);
  assert.deepEqual(incoming, ['z', 'y']);
  assert.notEqual(c, incoming);
});

test('sets with the same size and the same first and last names are told apart', () => {
  const x = canonicalNames(['a', 'm', 'z'], undefined);
  const y = canonicalNames(['a', 'n', 'z'], undefined);
  assert.notEqual(x, y);
  assert.deepEqual(y, ['a', 'n', 'z']);
  assert.equal(canonicalNames(['z', 'm', 'a'], undefined), x);
  assert.equal(canonicalNames(['a', 'n', 'z'], undefined), y, 'already sorted: found without sorting');
  // Many such sets: each still resolves to an array with its own names.
  for (let i = 0; i < 40; i++) assert.deepEqual(canonicalNames(['a', `k${i}`, 'z'], undefined), ['a', `k${i}`, 'z']);
});
