-- Spreadsheets run a cell that starts with =, +, -, @ (or a tab or carriage
-- return, which some of them skip first) as a formula. A leading apostrophe
-- makes them show it as text (OWASP, "CSV injection"). Exports with the excel
-- option pass every text cell through this.
-- No "set search_path": that would stop the planner from inlining the body,
-- and an export calls this for millions of cells.
create or replace function app_hidden.excel_safe(cell text) returns text
language sql immutable parallel safe
as $$
  select case when pg_catalog.left(cell, 1) in ('=', '+', '-', '@', E'\t', E'\r') then '''' || cell else cell end;
$$;
comment on function app_hidden.excel_safe(text) is
  'The cell with a leading apostrophe when a spreadsheet would read it as a formula.';
