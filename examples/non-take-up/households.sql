SELECT h.hushall FROM (SELECT m.hushall AS hushall, COUNT(*) AS personer, SUM(i.belopp) AS inkomst
    FROM hushall m JOIN (SELECT pnr, SUM(inkomst) AS belopp FROM inkomst GROUP BY pnr) i ON m.pnr = i.pnr
    GROUP BY m.hushall) h
  WHERE h.inkomst < CASE WHEN h.personer = 1 THEN 150000 WHEN h.personer = 2 THEN 240000 ELSE 240000 + 60000 * (h.personer - 2) END;
