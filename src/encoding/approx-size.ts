/**
 * A quick estimate of a value's CBOR size in bytes, for bounding replies (a page of KV entries)
 * without encoding every value twice: encoding a page's values only to measure them cost more
 * than the page itself. Exact for none, close for plain data: strings count their UTF-16 length
 * (ASCII is one byte a unit in UTF-8), numbers 9, containers their heads and children. Stops
 * walking once the estimate passes `budget`, so a huge value costs no more than the budget.
 */
export function approxCborSize(value: unknown, budget = Number.POSITIVE_INFINITY): number {
  let size = 0;
  const stack: unknown[] = [value];
  while (stack.length > 0 && size <= budget) {
    const v = stack.pop();
    switch (typeof v) {
      case 'string':
        size += v.length + 3;
        continue;
      case 'number':
      case 'bigint':
        size += 9;
        continue;
      case 'object':
        break;
      default:
        size += 1;
        continue;
    }
    if (v === null) {
      size += 1;
    } else if (ArrayBuffer.isView(v)) {
      size += v.byteLength + 5;
    } else if (v instanceof Date) {
      size += 10;
    } else if (Array.isArray(v) || v instanceof Set) {
      size += 3;
      for (const x of v) stack.push(x);
    } else if (v instanceof Map) {
      size += 3;
      for (const [k, x] of v) stack.push(k, x);
    } else {
      size += 3;
      for (const k in v) stack.push(k, (v as Record<string, unknown>)[k]);
    }
  }
  return size;
}
