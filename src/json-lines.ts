// JSON lines from the raw CSV fields of a COPY (src/copy-csv.ts), byte for
// byte what the worker wrote from JavaScript values before: each value as
// row_to_json writes it (numbers and booleans bare, NaN and infinities as
// strings, timestamps in ISO 8601 with a T and a +hh:mm offset, everything
// else a JSON string escaped as JSON.stringify escapes it).
import type { Field } from "./copy-csv.ts";
import { BOOL, FLOAT4, FLOAT8, INT2, INT4, INT8, NUMERIC, TIMESTAMPTZ } from "./pg-types.ts";

const NUMBER_TYPES = new Set([INT8, INT2, INT4, FLOAT4, FLOAT8, NUMERIC]);

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const SHORT_ESCAPES: Record<number, number> = { 0x08: 0x62, 0x09: 0x74, 0x0a: 0x6e, 0x0c: 0x66, 0x0d: 0x72 };
const HEX = Buffer.from("0123456789abcdef");

type ValueWriter = (out: JsonOutput, bytes: Buffer, field: Field) => void;

/** A growing output buffer for one chunk's lines. */
class JsonOutput {
  buffer = Buffer.allocUnsafe(1 << 16);
  length = 0;

  reserve(bytes: number): void {
    if (this.length + bytes <= this.buffer.length) return;
    const grown = Buffer.allocUnsafe(Math.max(this.buffer.length * 2, this.length + bytes));
    this.buffer.copy(grown, 0, 0, this.length);
    this.buffer = grown;
  }

  bytes(source: Buffer, start = 0, end = source.length): void {
    this.reserve(end - start);
    // Most pieces are a few bytes, for which a loop costs less than a native call.
    if (end - start > 64) {
      this.length += source.copy(this.buffer, this.length, start, end);
      return;
    }
    const out = this.buffer;
    let length = this.length;
    for (let i = start; i < end; i++) out[length++] = source[i];
    this.length = length;
  }

  byte(value: number): void {
    this.reserve(1);
    this.buffer[this.length++] = value;
  }

  /**
   * Bytes [start, end) of `source` as a JSON string: quotes, backslashes and
   * control characters escaped; `quoted`: a CSV field, whose doubled quotes are one.
   */
  jsonString(source: Buffer, start: number, end: number, quoted: boolean): void {
    // At worst every byte becomes \u00XX.
    this.reserve((end - start) * 6 + 2);
    const out = this.buffer;
    let length = this.length;
    out[length++] = QUOTE;
    for (let i = start; i < end; i++) {
      const byte = source[i];
      if (byte >= 0x20 && byte !== QUOTE && byte !== BACKSLASH) {
        out[length++] = byte;
      } else if (byte === QUOTE || byte === BACKSLASH) {
        out[length++] = BACKSLASH;
        out[length++] = byte;
        if (byte === QUOTE && quoted) i++;
      } else if (SHORT_ESCAPES[byte] !== undefined) {
        out[length++] = BACKSLASH;
        out[length++] = SHORT_ESCAPES[byte];
      } else {
        out[length++] = BACKSLASH;
        out[length++] = 0x75; // u
        out[length++] = 0x30;
        out[length++] = 0x30;
        out[length++] = HEX[byte >> 4];
        out[length++] = HEX[byte & 15];
      }
    }
    out[length++] = QUOTE;
    this.length = length;
  }

  take(): Buffer {
    const taken = Buffer.from(this.buffer.subarray(0, this.length));
    this.length = 0;
    return taken;
  }
}

const NULL = Buffer.from("null");
const TRUE = Buffer.from("true");
const FALSE = Buffer.from("false");
const OFFSET_MINUTES = Buffer.from(":00");

function valueWriter(oid: number): ValueWriter {
  if (NUMBER_TYPES.has(oid)) {
    return (out, bytes, field) => {
      const first = bytes[field.start] === 0x2d ? bytes[field.start + 1] : bytes[field.start];
      if (first >= 0x30 && first <= 0x39) out.bytes(bytes, field.start, field.end);
      else out.jsonString(bytes, field.start, field.end, false);
    };
  }
  if (oid === BOOL) return (out, bytes, field) => out.bytes(bytes[field.start] === 0x74 ? TRUE : FALSE);
  if (oid === TIMESTAMPTZ) {
    // PostgreSQL's text in UTC (the session's TimeZone): 2025-01-31 09:15:00.123456+00.
    return (out, bytes, field) => {
      out.byte(QUOTE);
      out.bytes(bytes, field.start, field.start + 10);
      out.byte(0x54); // T
      out.bytes(bytes, field.start + 11, field.end);
      out.bytes(OFFSET_MINUTES);
      out.byte(QUOTE);
    };
  }
  return (out, bytes, field) => out.jsonString(bytes, field.start, field.end, field.quoted);
}

/** Writes rows of the columns (name and type id) as JSON lines, one chunk at a time. */
export class JsonLines {
  private readonly out = new JsonOutput();
  private readonly keys: Buffer[];
  private readonly writers: ValueWriter[];

  constructor(columns: { name: string; dataTypeID: number }[]) {
    this.keys = columns.map((column, c) => Buffer.from(`${c ? "," : "{"}${JSON.stringify(column.name)}:`));
    this.writers = columns.map((column) => valueWriter(column.dataTypeID));
  }

  row(bytes: Buffer, fields: Field[]): void {
    const { out, keys, writers } = this;
    for (let c = 0; c < keys.length; c++) {
      out.bytes(keys[c]);
      if (fields[c].null) out.bytes(NULL);
      else writers[c](out, bytes, fields[c]);
    }
    out.byte(0x7d); // }
    out.byte(0x0a);
  }

  /** The lines written since the last call. */
  take(): Buffer {
    return this.out.take();
  }
}
