SELECT DISTINCT f.pnr FROM fk f WHERE EXISTS (SELECT 1 FROM ek e WHERE e.pnr = f.pnr AND e.fran <= f.till AND f.fran <= e.till);
