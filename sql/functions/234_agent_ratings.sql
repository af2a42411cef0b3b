-- The inverse of a small square matrix (k x k, row-major in a 2-D array), by
-- Gauss-Jordan elimination with partial pivoting.
create or replace function app_hidden.inverted(matrix float8[], k int) returns float8[]
language plpgsql immutable
set search_path = pg_catalog
as $$
declare
  a float8[] := matrix;
  result float8[] := array_fill(0::float8, array[k, k]);
  pivot_row int;
  factor float8;
  swap float8;
begin
  for i in 1 .. k loop
    result[i][i] := 1;
  end loop;
  for col in 1 .. k loop
    pivot_row := col;
    for r in col + 1 .. k loop
      if abs(a[r][col]) > abs(a[pivot_row][col]) then
        pivot_row := r;
      end if;
    end loop;
    if pivot_row <> col then
      for c in 1 .. k loop
        swap := a[col][c]; a[col][c] := a[pivot_row][c]; a[pivot_row][c] := swap;
        swap := result[col][c]; result[col][c] := result[pivot_row][c]; result[pivot_row][c] := swap;
      end loop;
    end if;
    factor := a[col][col];
    for c in 1 .. k loop
      a[col][c] := a[col][c] / factor;
      result[col][c] := result[col][c] / factor;
    end loop;
    for r in 1 .. k loop
      if r <> col and a[r][col] <> 0 then
        factor := a[r][col];
        for c in 1 .. k loop
          a[r][c] := a[r][c] - factor * a[col][c];
          result[r][c] := result[r][c] - factor * result[col][c];
        end loop;
      end if;
    end loop;
  end loop;
  return result;
end;
$$;

-- Bradley-Terry ratings fitted to the head-to-head matches of [from, to): agent
-- i beats j with probability 1 / (1 + exp(theta_j - theta_i)); a tie counts as
-- half a win each way. Every pair of the agents that played gets one virtual
-- tie besides, so that an agent that won (or lost) every match, or groups of
-- agents that never met, still get finite ratings; its weight fades as matches
-- add up. The maximum-likelihood fit is Newton's method on the log-likelihood
-- (centred: the thetas sum to 0); the 95% intervals come from the inverse of the
-- Fisher information there (its pseudo-inverse, as the centring leaves one
-- direction free). Ratings are on the Elo scale: 1000 + 400 log10(e) theta, an
-- agent 400 points above another being expected to win 10 matches to 1.
-- The fit runs over the small agent-by-agent table, never the rows.
create or replace function app_public.agent_ratings("from" date, "to" date)
returns table (agent text, rating float8, lower float8, upper float8)
language plpgsql stable
set search_path = pg_catalog
set jit = off
as $$
declare
  names text[];
  k int;
  matches float8[];
  wins float8[];
  theta float8[];
  information float8[];
  covariance float8[];
  gradient float8[];
  step float8[];
  largest float8;
  p float8;
  weight float8;
  i int;
  j int;
  pair record;
  elo constant float8 := 400 / ln(10);
  z constant float8 := 1.959963984540054;
begin
  perform app_hidden.check_day_range("from", "to");
  names := array(select n from (select p.agent as n from app_hidden.agent_pairs("from", "to") p
                                union select p.opponent from app_hidden.agent_pairs("from", "to") p) played order by n);
  k := cardinality(names);
  if k < 2 then
    return;
  end if;
  matches := array_fill(1::float8, array[k, k]);
  wins := array_fill(0.5 * (k - 1), array[k]);
  for i in 1 .. k loop
    matches[i][i] := 0;
  end loop;
  for pair in select * from app_hidden.agent_pairs("from", "to") loop
    i := array_position(names, pair.agent);
    j := array_position(names, pair.opponent);
    matches[i][j] := matches[i][j] + pair.wins + pair.losses + pair.ties;
    matches[j][i] := matches[i][j];
    wins[i] := wins[i] + pair.wins + 0.5 * pair.ties;
    wins[j] := wins[j] + pair.losses + 0.5 * pair.ties;
  end loop;
  theta := array_fill(0::float8, array[k]);
  for iteration in 1 .. 100 loop
    -- The information plus 1/k in every cell: invertible, and its inverse less
    -- 1/k is the pseudo-inverse, which keeps the thetas' sum where it is.
    information := array_fill(1::float8 / k, array[k, k]);
    gradient := wins;
    for i in 1 .. k loop
      for j in 1 .. k loop
        if i <> j then
          p := 1 / (1 + exp(theta[j] - theta[i]));
          weight := matches[i][j] * p * (1 - p);
          gradient[i] := gradient[i] - matches[i][j] * p;
          information[i][i] := information[i][i] + weight;
          information[i][j] := information[i][j] - weight;
        end if;
      end loop;
    end loop;
    covariance := app_hidden.inverted(information, k);
    step := array_fill(0::float8, array[k]);
    largest := 0;
    for i in 1 .. k loop
      for j in 1 .. k loop
        step[i] := step[i] + (covariance[i][j] - 1::float8 / k) * gradient[j];
      end loop;
      largest := greatest(largest, abs(step[i]));
    end loop;
    exit when largest < 1e-12;
    -- Damped far from the optimum, where a full Newton step can overshoot.
    for i in 1 .. k loop
      theta[i] := theta[i] + step[i] * least(1, 2 / largest);
    end loop;
  end loop;
  return query
    select names[n], 1000 + elo * theta[n],
           1000 + elo * (theta[n] - z * sqrt(covariance[n][n] - 1::float8 / k)),
           1000 + elo * (theta[n] + z * sqrt(covariance[n][n] - 1::float8 / k))
      from generate_series(1, k) n
     order by theta[n] desc, names[n];
end;
$$;
comment on function app_public.agent_ratings(date, date) is
  'A Bradley-Terry rating (Elo scale, average 1000) per agent from the head-to-head matches of prompts created (UTC) from the day `from` up to, not including, `to`, with its 95% interval, best first; ties count as half a win, and each pair of agents gets one virtual tie. Agents without a match are left out.';
