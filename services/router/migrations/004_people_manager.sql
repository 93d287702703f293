-- Whom a person reports to (optional, sheet `people` column `manager`): that person may register her absences.
ALTER TABLE people ADD COLUMN manager text NOT NULL DEFAULT '';
