// Arrow columns built from the raw CSV fields of a COPY (src/copy-csv.ts), for
// Parquet (src/formats.ts): integers, timestamps with time zone (as UTC
// microseconds), numerics and floats (as doubles), booleans and text (its
// bytes copied as they come, never decoded into JavaScript strings).
import * as arrow from "apache-arrow";
import type { Field } from "./copy-csv.ts";
import { BOOL, FLOAT4, FLOAT8, INT2, INT4, INT8, NUMERIC, TIMESTAMPTZ } from "./pg-types.ts";

export function arrowTypeOf(oid: number): arrow.DataType {
  switch (oid) {
    case INT8:
      return new arrow.Int64();
    case INT4:
      return new arrow.Int32();
    case INT2:
      return new arrow.Int16();
    case BOOL:
      return new arrow.Bool();
    case FLOAT4:
    case FLOAT8:
    case NUMERIC:
      return new arrow.Float64();
    case TIMESTAMPTZ:
      return new arrow.TimestampMicrosecond("UTC");
    default:
      return new arrow.Utf8();
  }
}

const QUOTE = 0x22;

function digitsAt(bytes: Buffer, start: number, count: number): number {
  let value = 0;
  for (let i = start; i < start + count; i++) value = value * 10 + bytes[i] - 0x30;
  return value;
}

/**
 * Microseconds since the epoch of a timestamptz as PostgreSQL writes it with
 * DateStyle ISO in UTC (the session's settings): 2025-01-31 09:15:00.123456+00.
 * A double holds them exactly until the year 2255.
 */
export function utcMicroseconds(bytes: Buffer, start: number, end: number): number {
  const milliseconds = Date.UTC(digitsAt(bytes, start, 4), digitsAt(bytes, start + 5, 2) - 1, digitsAt(bytes, start + 8, 2),
    digitsAt(bytes, start + 11, 2), digitsAt(bytes, start + 14, 2), digitsAt(bytes, start + 17, 2));
  let fraction = 0;
  let position = start + 19;
  if (bytes[position] === 0x2e) {
    let digits = 0;
    for (position++; position < end && bytes[position] >= 0x30 && bytes[position] <= 0x39; position++, digits++) {
      fraction = fraction * 10 + bytes[position] - 0x30;
    }
    fraction *= 10 ** (6 - digits);
  }
  return milliseconds * 1000 + fraction;
}

/**
 * A number's text as a double: plain decimals of up to 15 digits as their
 * digits divided by a power of ten (both exact, so the quotient is rounded
 * once, as parsing the text rounds it); anything else (more digits, NaN,
 * Infinity) parsed as text. NaN: not a plain decimal.
 */
function plainDecimal(bytes: Buffer, start: number, end: number): number {
  let position = start;
  const negative = bytes[position] === 0x2d;
  if (negative) position++;
  let digits = 0;
  let value = 0;
  let scale = 1;
  let point = false;
  for (; position < end; position++) {
    const byte = bytes[position];
    if (byte === 0x2e && !point) point = true;
    else if (byte >= 0x30 && byte <= 0x39) {
      value = value * 10 + byte - 0x30;
      if (point) scale *= 10;
      if (++digits > 15) return NaN;
    } else return NaN;
  }
  if (digits === 0) return NaN;
  return (negative ? -value : value) / scale;
}

function parseDouble(bytes: Buffer, start: number, end: number): number {
  const value = plainDecimal(bytes, start, end);
  return Number.isNaN(value) ? Number(bytes.toString("latin1", start, end)) : value;
}

/** A 64-bit integer's text as a double when it has 15 digits or fewer (exact), else NaN. */
function smallInteger(bytes: Buffer, start: number, end: number): number {
  const negative = bytes[start] === 0x2d;
  const first = negative ? start + 1 : start;
  if (end - first > 15 || end === first) return NaN;
  let value = 0;
  for (let i = first; i < end; i++) value = value * 10 + bytes[i] - 0x30;
  return negative ? -value : value;
}

interface Column {
  add(bytes: Buffer, field: Field, row: number): void;
  /** A null in the row (its bit in the null bitmap stays 0). */
  skip(row: number): void;
  data(length: number, nullBitmap: Uint8Array, nullCount: number): arrow.Data;
}

const nothing = () => {};

/** A column of 64-bit integers or timestamps: each value's two 32-bit halves (little-endian), no BigInt on the way. */
function int64Column(type: arrow.DataType, rows: number, oid: number): Column {
  const values = new BigInt64Array(rows);
  const halves = new Int32Array(values.buffer);
  return {
    add: (bytes, field, row) => {
      const value = oid === TIMESTAMPTZ ? utcMicroseconds(bytes, field.start, field.end) : smallInteger(bytes, field.start, field.end);
      if (Number.isNaN(value)) {
        values[row] = BigInt(bytes.toString("latin1", field.start, field.end));
        return;
      }
      const high = Math.floor(value / 4294967296);
      halves[2 * row] = value - high * 4294967296;
      halves[2 * row + 1] = high;
    },
    skip: nothing,
    data: (length, nullBitmap, nullCount) => arrow.makeData({ type, length, nullCount, nullBitmap, data: values.subarray(0, length) } as never),
  };
}

/** A column of 32- or 16-bit integers or doubles, parsed from their text. */
function numberColumn(type: arrow.DataType, rows: number): Column {
  const values = new (type.ArrayType as Float64ArrayConstructor)(rows);
  return {
    add: (bytes, field, row) => (values[row] = parseDouble(bytes, field.start, field.end)),
    skip: nothing,
    data: (length, nullBitmap, nullCount) => arrow.makeData({ type, length, nullCount, nullBitmap, data: values.subarray(0, length) } as never),
  };
}

function boolColumn(type: arrow.DataType, rows: number): Column {
  const bits = new Uint8Array(Math.ceil(rows / 8));
  return {
    add: (bytes, field, row) => {
      if (bytes[field.start] === 0x74) bits[row >> 3] |= 1 << (row & 7);
    },
    skip: nothing,
    data: (length, nullBitmap, nullCount) => arrow.makeData({ type, length, nullCount, nullBitmap, data: bits } as never),
  };
}

/** Text as Arrow's offsets and bytes: each field's bytes, a quoted field's doubled quotes made one. */
function utf8Column(type: arrow.DataType, rows: number): Column {
  const valueOffsets = new Int32Array(rows + 1);
  let data = Buffer.allocUnsafe(1 << 16);
  let size = 0;
  return {
    add: (bytes, field, row) => {
      const length = field.end - field.start;
      if (size + length > data.length) {
        const grown = Buffer.allocUnsafe(Math.max(data.length * 2, size + length));
        data.copy(grown, 0, 0, size);
        data = grown;
      }
      if (!field.quoted && length > 64) {
        size += bytes.copy(data, size, field.start, field.end);
      } else if (!field.quoted) {
        // A loop costs less than a native call for a few bytes.
        for (let i = field.start; i < field.end; i++) data[size++] = bytes[i];
      } else {
        for (let i = field.start; i < field.end; i++) {
          data[size++] = bytes[i];
          if (bytes[i] === QUOTE) i++;
        }
      }
      valueOffsets[row + 1] = size;
    },
    skip: (row) => (valueOffsets[row + 1] = size),
    data: (length, nullBitmap, nullCount) =>
      arrow.makeData({ type, length, nullCount, nullBitmap, valueOffsets: valueOffsets.subarray(0, length + 1), data: data.subarray(0, size) } as never),
  };
}

/** Up to `rows` rows of the columns, as one Arrow record batch. */
export class ArrowBatch {
  length = 0;
  private readonly schema: arrow.Schema;
  private readonly columns: Column[];
  private readonly nullBitmaps: Uint8Array[];
  private readonly nullCounts: number[];

  constructor(schema: arrow.Schema, oids: number[], rows: number) {
    this.schema = schema;
    this.columns = schema.fields.map((field, c) => {
      if (arrow.DataType.isUtf8(field.type)) return utf8Column(field.type, rows);
      if (arrow.DataType.isBool(field.type)) return boolColumn(field.type, rows);
      if (oids[c] === INT8 || oids[c] === TIMESTAMPTZ) return int64Column(field.type, rows, oids[c]);
      return numberColumn(field.type, rows);
    });
    this.nullBitmaps = this.columns.map(() => new Uint8Array(Math.ceil(rows / 8)));
    this.nullCounts = this.columns.map(() => 0);
  }

  add(bytes: Buffer, fields: Field[]): void {
    const row = this.length++;
    for (let c = 0; c < fields.length; c++) {
      const field = fields[c];
      if (field.null) {
        this.nullCounts[c]++;
        this.columns[c].skip(row);
      } else {
        this.nullBitmaps[c][row >> 3] |= 1 << (row & 7);
        this.columns[c].add(bytes, field, row);
      }
    }
  }

  finish(): arrow.RecordBatch {
    const children = this.columns.map((column, c) => column.data(this.length, this.nullBitmaps[c], this.nullCounts[c]));
    return new arrow.RecordBatch(this.schema, arrow.makeData({ type: new arrow.Struct(this.schema.fields), length: this.length, children }));
  }
}
