package documents

import (
	"context"
	"fmt"

	"github.com/corpintel/corpintel/api/gdpr"
	"github.com/jackc/pgx/v5"
)

// GDPRSource contributes the documents a user uploaded (metadata; the content belongs to
// the company, not the person) and rewrites their uploader to the pseudonym.
func GDPRSource() gdpr.Source {
	return gdpr.Source{
		Name: "documents",
		Export: func(ctx context.Context, q gdpr.Querier, userID string) (any, error) {
			rows, err := q.Query(ctx, `SELECT `+documentColumns+` FROM documents WHERE uploaded_by = $1 ORDER BY created_at, id`, userID)
			if err != nil {
				return nil, fmt.Errorf("select documents: %w", err)
			}
			defer rows.Close()
			out := []Document{}
			for rows.Next() {
				var d Document
				if err := scanDocument(rows, &d); err != nil {
					return nil, fmt.Errorf("select documents: %w", err)
				}
				out = append(out, d)
			}
			return out, rows.Err()
		},
		Anonymize: func(ctx context.Context, tx pgx.Tx, userID, pseudonym string) error {
			if _, err := tx.Exec(ctx, `UPDATE documents SET uploaded_by = $2 WHERE uploaded_by = $1`, userID, pseudonym); err != nil {
				return fmt.Errorf("rewrite uploader: %w", err)
			}
			return nil
		},
	}
}
