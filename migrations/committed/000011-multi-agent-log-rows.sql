--! Previous: sha1:9dbede7a546a3b8e83999f28fc68dd53169a8c36
--! Hash: sha1:c4eb69b2d620b2cc1b9e002954fe48fc3a1a4330
--! Message: multi agent log rows

-- What multi_agent_log.csv shows of a prompt beyond the prompt row itself, one
-- row per prompt, kept exact in the writing transaction by the triggers of
-- sql/rules/180_multi_agent_log_rows.sql. The export then reads two tables in
-- prompt order instead of ranking every version and looking up every score
-- (README, "Exports").
--   final_prompt, selected_agent  the best head's version text and agent
--   scores                        {agent: judge total of that agent's newest
--                                 version, JSON null when it is unscored}
create table if not exists app_hidden.multi_agent_log_rows (
  prompt_id bigint primary key,
  user_id bigint not null,
  final_prompt text,
  selected_agent text,
  scores jsonb not null default '{}',
  constraint multi_agent_log_rows_prompt_fkey foreign key (user_id, prompt_id)
    references app_public.prompts (user_id, id) on delete cascade
);
comment on table app_hidden.multi_agent_log_rows is
  'Per prompt: its best head''s text and agent, and each agent''s newest judge total, as multi_agent_log.csv shows them.';
alter table app_hidden.multi_agent_log_rows enable row level security;
grant select on app_hidden.multi_agent_log_rows to app_user, app_reader;

insert into app_hidden.multi_agent_log_rows (prompt_id, user_id, final_prompt, selected_agent, scores)
select p.id, p.user_id, final.text, head.source, coalesce(newest.scores, '{}')
  from app_public.prompts p
  left join app_public.best_heads head on head.prompt_id = p.id
  left join app_public.prompt_versions final on final.id = head.prompt_version_id
  left join (
    select v.prompt_id, jsonb_object_agg(v.source, s.total) as scores
      from (select distinct on (v.prompt_id, v.source) v.prompt_id, v.source, v.id
              from app_public.prompt_versions v
             order by v.prompt_id, v.source, v.created_at desc, v.id desc) v
      left join app_public.judge_scores s on s.prompt_version_id = v.id
     group by v.prompt_id
  ) newest on newest.prompt_id = p.id
 order by p.id
on conflict (prompt_id) do nothing;
