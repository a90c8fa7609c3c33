SELECT pnr, manad, COUNT(DISTINCT kommun) AS kommuner FROM (
  SELECT pnr, manad, 1 AS kommun FROM bistand_1 UNION ALL SELECT pnr, manad, 2 FROM bistand_2
  UNION ALL SELECT pnr, manad, 3 FROM bistand_3) b GROUP BY pnr, manad HAVING COUNT(DISTINCT kommun) >= 2;
