SELECT h.rad FROM holder h WHERE h.pnr IN (SELECT pnr FROM optout);
