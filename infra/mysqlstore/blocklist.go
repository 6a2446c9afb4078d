package mysqlstore

import (
	"context"

	"gorm.io/gorm/clause"

	"seckill/domain/sale"
)

// Block puts user on the blocklist with reason; added is false, and the
// first reason stands, if they were already on it.
func (s *Store) Block(ctx context.Context, user sale.UserID, reason string) (added bool, err error) {
	if _, err := sale.ParseUserID(string(user)); err != nil {
		return false, err
	}
	r, err := sale.ParseBlockReason(reason)
	if err != nil {
		return false, err
	}
	// Insert-or-skip: the primary key decides between two admins at once.
	res := s.db.WithContext(ctx).Clauses(clause.OnConflict{DoNothing: true}).Create(&blockedRow{
		UserID: string(user), Reason: r, BlockedAt: s.now(),
	})
	if res.Error != nil {
		return false, translate(ctx, "block "+string(user), res.Error)
	}
	return res.RowsAffected == 1, nil
}

// Unblock takes user off the blocklist; removed is false if they were not
// on it.
func (s *Store) Unblock(ctx context.Context, user sale.UserID) (removed bool, err error) {
	res := s.db.WithContext(ctx).Where("user_id = ?", string(user)).Delete(&blockedRow{})
	if res.Error != nil {
		return false, translate(ctx, "unblock "+string(user), res.Error)
	}
	return res.RowsAffected > 0, nil
}

// Blocklist returns every blocked user, oldest block first; an empty list
// is a non-nil empty slice.
func (s *Store) Blocklist(ctx context.Context) ([]sale.Blocked, error) {
	var rows []blockedRow
	if err := s.db.WithContext(ctx).Order("blocked_at, user_id").Find(&rows).Error; err != nil {
		return nil, translate(ctx, "blocklist", err)
	}
	out := make([]sale.Blocked, 0, len(rows))
	for _, r := range rows {
		out = append(out, sale.Blocked{User: sale.UserID(r.UserID), Reason: r.Reason, BlockedAt: r.BlockedAt.UTC()})
	}
	return out, nil
}
