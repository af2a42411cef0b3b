-- Owner columns default to the signed-in user; RLS "with check" stops anyone
-- from setting them to someone else.
alter table app_public.prompts alter column user_id set default app_public.current_user_id();
alter table app_public.prompt_versions alter column user_id set default app_public.current_user_id();
alter table app_public.judge_scores alter column user_id set default app_public.current_user_id();
alter table app_public.best_heads alter column user_id set default app_public.current_user_id();
alter table app_public.exports alter column user_id set default app_public.current_user_id();
