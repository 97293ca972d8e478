-- A project belongs to one account, so `project_id` determines `owner_id`. Without being told,
-- the planner multiplies the two columns' selectivities and expects about 10 rows for
-- `owner_id = … AND project_id = …` in a project of 500 tasks: the custom plan of the
-- project-filtered list (LIST_PROJECT_NEWEST) then becomes a bitmap scan of the whole project
-- and a sort (134 buffers), not an index scan that stops after one page (29 buffers). Measured
-- with EXPLAIN in docs/PERFORMANCE.md ("Growth"); the dependency statistics fix the estimate.
CREATE STATISTICS tasks_owner_project_deps (dependencies) ON owner_id, project_id FROM tasks;
ANALYZE tasks;
