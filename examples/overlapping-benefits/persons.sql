SELECT COUNT(DISTINCT f.pnr) AS personer, SUM(f.belopp) AS fk_belopp FROM fk f
  WHERE EXISTS (SELECT 1 FROM ek e WHERE e.pnr = f.pnr AND e.fran <= f.till AND f.fran <= e.till);
