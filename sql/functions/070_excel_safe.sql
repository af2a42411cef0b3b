-- Spreadsheets run a cell that starts with =, +, -, @ (or a tab or carriage
-- return, which some of them skip first) as a formula. A leading apostrophe
-- makes them show it as text (OWASP, "CSV injection"). Leading spaces and line
-- breaks count as nothing here: importers that trim cells (LibreOffice's "trim
-- spaces", many BI tools) would otherwise run " =1+2" or E'\n@cmd', so a cell
-- whose first character other than space, tab, CR or LF is one of the four is
-- escaped too. Exports with the excel option pass every text cell through this.
-- The second test only runs for cells starting with whitespace, so the common
-- case stays one left() per cell.
-- No "set search_path": that would stop the planner from inlining the body,
-- and an export calls this for millions of cells.
create or replace function app_hidden.excel_safe(cell text) returns text
language sql immutable parallel safe
as $$
  select case
    when pg_catalog.left(cell, 1) in ('=', '+', '-', '@', E'\t', E'\r') then '''' || cell
    when pg_catalog.left(cell, 1) in (' ', E'\n')
         and pg_catalog.left(pg_catalog.ltrim(cell, E' \t\r\n'), 1) in ('=', '+', '-', '@') then '''' || cell
    else cell
  end;
$$;
comment on function app_hidden.excel_safe(text) is
  'The cell with a leading apostrophe when a spreadsheet would read it as a formula, also after leading whitespace.';
